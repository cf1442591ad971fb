//! The checkpoint edge agent: cameras → GStreamer → detector → MQTT. See `daemon` for how the stages are
//! wired and `README.md` for the operator's view.

pub mod backoff;
pub mod checks;
pub mod cli;
pub mod clips;
pub mod control;
pub mod counts;
pub mod daemon;
pub mod eventlog;
pub mod events;
pub mod files;
pub mod frame_loop;
pub mod gat1400;
pub mod health;
pub mod history;
pub mod inference;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod motion;
pub mod mqtt;
pub mod notify;
pub mod outbox;
pub mod payload;
pub mod rules;
pub mod snapshots;
pub mod source;
pub mod stats;
pub mod storage;
pub mod store;
pub mod systemd;
pub mod topics;
pub mod tracking;
pub mod web;
