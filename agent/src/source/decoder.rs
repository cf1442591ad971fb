//! Which video decoder a camera uses: `auto` lets decodebin choose, `software` skips hardware decoders, and
//! a hardware family (`vaapi`, `nvcodec`, `v4l2`) must be installed and is the only kind tried.

use std::sync::Arc;

use edge_config::DecoderChoice;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

use crate::stats::CameraRecord;

/// Factory-name prefixes of each hardware decoder family.
fn family_prefixes(choice: DecoderChoice) -> &'static [&'static str] {
    match choice {
        DecoderChoice::Vaapi => &["vaapi", "va"],
        DecoderChoice::Nvcodec => &["nv"],
        DecoderChoice::V4l2 => &["v4l2"],
        DecoderChoice::Auto | DecoderChoice::Software => &[],
    }
}

/// Video decoders, and image decoders (jpegdec decodes MJPEG streams).
pub fn is_video_decoder(factory: &gst::ElementFactory) -> bool {
    let klass = factory.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or_default();
    klass.contains("Decoder") && (klass.contains("Video") || klass.contains("Image"))
}

pub fn is_hardware(factory: &gst::ElementFactory) -> bool {
    factory.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or_default().contains("Hardware")
}

/// Whether `factory` belongs to the hardware family `choice`.
fn in_family(factory: &gst::ElementFactory, choice: DecoderChoice) -> bool {
    let name = factory.name();
    is_hardware(factory) && family_prefixes(choice).iter().any(|p| name.starts_with(p))
}

/// The Debian package that provides a decoder family.
fn family_package(choice: DecoderChoice) -> &'static str {
    match choice {
        DecoderChoice::Vaapi => "gstreamer1.0-vaapi (or the va plugin of gstreamer1.0-plugins-bad) and the VA driver",
        DecoderChoice::Nvcodec => "gstreamer1.0-plugins-bad built with nvcodec, and the NVIDIA driver",
        DecoderChoice::V4l2 => "gstreamer1.0-plugins-good (v4l2codecs) and a V4L2 decoder device",
        DecoderChoice::Auto | DecoderChoice::Software => "gstreamer1.0-libav",
    }
}

/// Fails with a message naming the package when a hardware family was asked for and none is installed.
pub fn check_available(choice: DecoderChoice) -> Result<(), String> {
    if family_prefixes(choice).is_empty() {
        return Ok(());
    }
    let available = gst::ElementFactory::factories_with_type(gst::ElementFactoryType::DECODER, gst::Rank::NONE).into_iter().any(|f| is_video_decoder(&f) && in_family(&f, choice));
    if available {
        Ok(())
    } else {
        Err(format!("decoder = {:?} but no such hardware video decoder is installed (needs {})", choice.as_str(), family_package(choice)))
    }
}

/// Steers decodebin: decoders that are not the requested kind are skipped.
pub fn steer(decode: &gst::Element, choice: DecoderChoice) {
    if choice == DecoderChoice::Auto {
        return;
    }
    let Some(class) = glib::Type::from_name("GstAutoplugSelectResult").and_then(glib::EnumClass::with_type) else { return };
    decode.connect("autoplug-select", false, move |values| {
        let factory = values.get(3).and_then(|v| v.get::<gst::ElementFactory>().ok())?;
        let skip = is_video_decoder(&factory)
            && match choice {
                DecoderChoice::Software => is_hardware(&factory),
                _ => !in_family(&factory, choice),
            };
        // 0 = try, 2 = skip.
        class.to_value(if skip { 2 } else { 0 })
    });
}

/// Notes which decoder decodebin picked, for the log and the status.
pub fn note_choice(pipeline: &gst::Pipeline, record: Arc<CameraRecord>, camera: String) {
    pipeline.connect_deep_element_added(move |_, _, element| {
        if let Some(factory) = element.factory() {
            if is_video_decoder(&factory) {
                let kind = if is_hardware(&factory) { "hardware" } else { "software" };
                tracing::info!(camera = %camera, decoder = %factory.name(), kind, "video decoder chosen");
                record.set_decoder(format!("{} ({kind})", factory.name()));
            }
        }
    });
}
