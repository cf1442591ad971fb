//! Hardware tests live in `tests/`. Each is `#[ignore]`d with the hardware it needs, so a machine without
//! it shows the test as ignored rather than passing it silently. Run them where the hardware is:
//!
//! ```text
//! ORT_DYLIB_PATH=/path/to/onnxruntime-gpu/capi/libonnxruntime.so.1.31.1 \
//!     cargo test -p hwtests -- --ignored
//! ```
