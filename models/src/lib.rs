//! Model adapters for the checkpoint edge agent.
//!
//! Each adapter is pure: an image goes in, detections come out. Each declares its tensor contract (names,
//! shapes, layout, colour order, normalisation, labels) as data and checks it against the ONNX session when
//! the model loads, failing with an error that names the file and the mismatch.
//!
//! This crate depends on neither tokio, GStreamer nor an MQTT client. Sessions take `&mut self` to run;
//! the agent gives each one a dedicated thread.

mod error;
pub mod geometry;
pub mod image;
pub mod labels;
pub mod manifest;
pub mod plates;
pub mod runtime;
pub mod yolox;

pub use error::ModelError;
pub use geometry::BBox;
pub use image::{BgrImage, BgrView};
pub use labels::{coco_class_id, ObjectClass, ObjectKind, COCO_LABELS};
pub use runtime::{environment, Provider, SessionOptions};
pub use yolox::{Detection, Yolox, YoloxSettings};
