//! 8-bit BGR images as the adapters see them, and the preprocessing every detector needs: bilinear resize
//! and letterboxing into a planar `f32` tensor.
//!
//! BGR because that is what the agent's GStreamer pipelines produce (`video/x-raw,format=BGR`) and what most
//! of our models were trained on; adapters that want RGB ask for it in their [`Normalisation`].

mod letterbox;
mod resize;

use std::path::Path;

use crate::geometry::BBox;
pub use letterbox::{letterbox_into, write_planar, Anchor, ChannelOrder, Letterbox, LetterboxBuffer, LetterboxSpec, Normalisation, Placement};
pub use resize::{resize_bilinear, resize_bilinear_into, BilinearRows};

/// Why an image could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image buffer too small: {width}x{height} with stride {stride} needs {needed} bytes, got {got}")]
    BufferTooSmall { width: u32, height: u32, stride: usize, needed: usize, got: usize },
    #[error("image has zero size ({width}x{height})")]
    Empty { width: u32, height: u32 },
    #[error("cannot decode image {path}: {reason}")]
    Decode { path: String, reason: String },
}

/// A borrowed BGR8 image; rows may be padded (`stride` ≥ `width * 3`), as in GStreamer buffers.
#[derive(Debug, Clone, Copy)]
pub struct BgrView<'a> {
    width: u32,
    height: u32,
    stride: usize,
    data: &'a [u8],
}

/// An owned, tightly packed BGR8 image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgrImage {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl<'a> BgrView<'a> {
    pub fn new(width: u32, height: u32, stride: usize, data: &'a [u8]) -> Result<Self, ImageError> {
        if width == 0 || height == 0 {
            return Err(ImageError::Empty { width, height });
        }
        let row = width as usize * 3;
        let needed = stride.max(row) * (height as usize - 1) + row;
        if stride < row || data.len() < needed {
            return Err(ImageError::BufferTooSmall { width, height, stride, needed, got: data.len() });
        }
        Ok(Self { width, height, stride, data })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// One row of `width * 3` bytes.
    #[inline]
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * 3]
    }

    /// A view of the part of the image inside `rect` (clamped to the image), without copying. `None` when the
    /// clamped rectangle is empty.
    pub fn crop(&self, rect: BBox) -> Option<BgrView<'a>> {
        let r = rect.clamp(self.width as f32, self.height as f32);
        let x0 = r.x1.floor() as u32;
        let y0 = r.y1.floor() as u32;
        let x1 = (r.x2.ceil() as u32).min(self.width);
        let y1 = (r.y2.ceil() as u32).min(self.height);
        if x1 <= x0 || y1 <= y0 {
            return None;
        }
        let start = y0 as usize * self.stride + x0 as usize * 3;
        Some(BgrView { width: x1 - x0, height: y1 - y0, stride: self.stride, data: &self.data[start..] })
    }

    pub fn to_owned(&self) -> BgrImage {
        let mut data = Vec::with_capacity(self.width as usize * self.height as usize * 3);
        for y in 0..self.height {
            data.extend_from_slice(self.row(y));
        }
        BgrImage { width: self.width, height: self.height, data }
    }
}

impl BgrImage {
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, ImageError> {
        BgrView::new(width, height, width as usize * 3, &data)?;
        Ok(Self { width, height, data })
    }

    /// Decodes a JPEG or PNG file.
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let decode = |reason: String| ImageError::Decode { path: path.display().to_string(), reason };
        let rgb = image::ImageReader::open(path)
            .map_err(|e| decode(e.to_string()))?
            .with_guessed_format()
            .map_err(|e| decode(e.to_string()))?
            .decode()
            .map_err(|e| decode(e.to_string()))?
            .into_rgb8();
        Self::from_rgb(rgb.width(), rgb.height(), rgb.as_raw())
    }

    /// Builds a BGR image from packed RGB bytes.
    pub fn from_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Self, ImageError> {
        let mut data = rgb.to_vec();
        for px in data.chunks_exact_mut(3) {
            px.swap(0, 2);
        }
        Self::new(width, height, data)
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The pixels, rows of `width * 3` bytes, for drawing on.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    pub fn view(&self) -> BgrView<'_> {
        BgrView { width: self.width, height: self.height, stride: self.width as usize * 3, data: &self.data }
    }
}

#[cfg(test)]
mod tests;
