//! Resizing and letterboxing against straightforward reference computations.

use super::*;

fn gradient(w: u32, h: u32) -> BgrImage {
    let mut data = Vec::new();
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&[(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 7]);
        }
    }
    BgrImage::new(w, h, data).unwrap()
}

#[test]
fn resize_to_same_size_is_identity() {
    let img = gradient(17, 9);
    assert_eq!(resize_bilinear(&img.view(), 17, 9), img);
}

#[test]
fn downscale_by_two_averages_neighbours() {
    // 2x1 image of 0 and 200 scaled to 1x1 samples the midpoint.
    let img = BgrImage::new(2, 1, vec![0, 0, 0, 200, 200, 200]).unwrap();
    let out = resize_bilinear(&img.view(), 1, 1);
    assert_eq!(out.as_bytes(), &[100, 100, 100]);
}

#[test]
fn letterbox_top_left_keeps_aspect_and_pads() {
    let lb = Letterbox::fit(640, 426, 416, 416, Anchor::TopLeft);
    assert!((lb.scale - 0.65).abs() < 1e-6);
    assert_eq!((lb.resized_w, lb.resized_h), (416, 277));
    assert_eq!((lb.pad_x, lb.pad_y), (0.0, 0.0));
    let (x, y) = lb.to_source(416.0, 277.0);
    assert!((x - 640.0).abs() < 0.01 && (y - 426.15).abs() < 0.2);
}

#[test]
fn letterbox_center_splits_padding() {
    let lb = Letterbox::fit(200, 100, 320, 320, Anchor::Center);
    assert_eq!((lb.resized_w, lb.resized_h), (320, 160));
    assert_eq!(lb.pad_y, 80.0);
    assert_eq!(lb.to_source(160.0, 160.0), (100.0, 50.0));
}

#[test]
fn planar_tensor_has_pad_and_channel_order() {
    let img = BgrImage::new(1, 1, vec![10, 20, 30]).unwrap();
    let mut out = vec![0f32; 3 * 2 * 2];
    let spec = |norm| LetterboxSpec { width: 2, height: 2, anchor: Anchor::TopLeft, pad: 114, norm };
    letterbox_into(&img.view(), &spec(Normalisation::raw(ChannelOrder::Rgb)), &mut out);
    // Image 1x1 scales to 2x2 (fills the input), so every pixel is the source pixel in RGB planes.
    assert_eq!(&out[0..4], &[30.0; 4]);
    assert_eq!(&out[8..12], &[10.0; 4]);
    let img = BgrImage::new(2, 1, vec![10, 20, 30, 10, 20, 30]).unwrap();
    letterbox_into(&img.view(), &spec(Normalisation::unit(ChannelOrder::Bgr)), &mut out);
    assert!((out[0] - 10.0 / 255.0).abs() < 1e-6);
    assert!((out[2] - 114.0 / 255.0).abs() < 1e-6, "bottom row is padding");
}

#[test]
fn crop_is_a_view_with_the_parent_stride() {
    let img = gradient(10, 10);
    let v = img.view().crop(BBox { x1: 2.0, y1: 3.0, x2: 5.0, y2: 4.0 }).unwrap();
    assert_eq!((v.width(), v.height()), (3, 1));
    assert_eq!(v.row(0), &img.view().row(3)[6..15]);
    assert!(img.view().crop(BBox { x1: 20.0, y1: 0.0, x2: 30.0, y2: 5.0 }).is_none());
}

#[test]
fn short_buffers_are_rejected() {
    assert!(BgrView::new(4, 4, 12, &[0u8; 40]).is_err());
    assert!(BgrView::new(4, 4, 16, &[0u8; 60]).is_ok());
    assert!(BgrView::new(0, 4, 16, &[0u8; 60]).is_err());
}
