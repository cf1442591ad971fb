//! Cutting a clip: the ring's fragments that cover it, joined into one MP4 with its index at the front
//! (`faststart`, so a browser starts playing before the whole file is there) — remuxed, not re-encoded.
//!
//! ```text
//! splitmuxsrc(the fragments) ─▶ h264parse ─▶ mp4mux faststart=true ─▶ filesink
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

/// Most time a cut may take (a few seconds of video remux in well under a second).
const CUT_TIMEOUT: Duration = Duration::from_secs(60);

/// Joins `fragments` (in order) into `out`.
pub fn join(fragments: &[PathBuf], codec: &str, out: &Path) -> Result<(), String> {
    if fragments.is_empty() {
        return Err("no recorded video covers the clip".into());
    }
    let make = |factory: &str| gst::ElementFactory::make(factory).build().map_err(|_| format!("GStreamer element {factory} is not installed"));
    let pipeline = gst::Pipeline::with_name("clip-cut");
    let src = make("splitmuxsrc")?;
    let parse = make(if codec == "h265" { "h265parse" } else { "h264parse" })?;
    let mux = make("mp4mux")?;
    mux.set_property("faststart", true);
    mux.set_property("faststart-file", out.with_extension("moov").to_string_lossy().to_string());
    let sink = make("filesink")?;
    sink.set_property("location", out.to_string_lossy().to_string());
    let files: Vec<String> = fragments.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    src.connect("format-location", false, move |_| Some(gst::glib::StrV::from(files.clone()).to_value()));
    pipeline.add_many([&src, &parse, &mux, &sink]).map_err(|e| format!("cannot assemble the cutter: {e}"))?;
    gst::Element::link_many([&parse, &mux, &sink]).map_err(|e| format!("cannot link the cutter: {e}"))?;
    let parse_sink = parse.static_pad("sink").ok_or("the parser has no sink pad")?;
    src.connect_pad_added(move |_, pad| {
        if !parse_sink.is_linked() {
            let _ = pad.link(&parse_sink);
        }
    });
    let bus = pipeline.bus().ok_or("the cutter has no bus")?;
    let result = match pipeline.set_state(gst::State::Playing) {
        Err(_) => Err("the cutter refused to start".to_string()),
        Ok(_) => match bus.timed_pop_filtered(gst::ClockTime::from_nseconds(CUT_TIMEOUT.as_nanos() as u64), &[gst::MessageType::Eos, gst::MessageType::Error]) {
            None => Err(format!("the cut took more than {} s", CUT_TIMEOUT.as_secs())),
            Some(msg) => match msg.view() {
                gst::MessageView::Error(e) => Err(format!("{} (from {})", e.error(), msg.src().map(|s| s.name().to_string()).unwrap_or_default())),
                _ => Ok(()),
            },
        },
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}
