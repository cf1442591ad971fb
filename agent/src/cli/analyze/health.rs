//! `edge-agent analyze --health VIDEO...`: the camera health check the daemon runs on every camera
//! (frozen, covered, moved), run on recordings with the config's `[health]` thresholds; the detector does
//! not run. One JSON line per alert (the alert payload, as on MQTT), raised or cleared.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edge_config::CameraUrl;

use super::inputs::Kind;
use super::{AnalyzeArgs, VideoSetup};
use crate::health::CameraHealth;
use crate::rules::Finding;
use crate::source::{self, Mode, Next, Pipeline, SourceSettings};
use crate::stats::{CameraRecord, CameraState};
use crate::topics::Origin;

/// Checks every video of `inputs`; images are reported as not applicable.
pub(super) fn run(inputs: &[(PathBuf, Kind)], args: &AnalyzeArgs, setup: &VideoSetup, mut failures: Vec<String>) -> anyhow::Result<ExitCode> {
    source::pipeline::init().map_err(anyhow::Error::msg)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut alerts = 0usize;
    for (path, kind) in inputs {
        let shown = path.display().to_string();
        if *kind != Kind::Video {
            eprintln!("error: {shown}: --health checks videos, not images");
            failures.push(shown);
            continue;
        }
        let result = check(path, args, setup, |finding, stream_s| {
            alerts += 1;
            let alert = crate::payload::Alert::new(finding, None);
            let line = if args.json {
                serde_json::to_string(&alert).unwrap_or_default()
            } else {
                let state = alert.health.as_ref().map_or("", |h| if h.state == crate::payload::HealthState::Raised { "raised" } else { "cleared" });
                format!("{shown} {stream_s:.1} s: {} {state}: {}", alert.rule, alert.health.as_ref().map_or("", |h| h.detail.as_str()))
            };
            let _ = writeln!(out, "{line}");
        });
        if let Err(e) = result {
            eprintln!("error: {shown}: {e:#}");
            failures.push(shown);
        }
    }
    eprintln!("checked {} input(s), {alerts} health alert(s), {} failure(s)", inputs.len(), failures.len());
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Every frame of one video at the detect rate through the camera health check.
fn check(path: &Path, args: &AnalyzeArgs, setup: &VideoSetup, mut each: impl FnMut(&Finding, f64)) -> anyhow::Result<()> {
    let absolute = std::fs::canonicalize(path).with_context(|| "cannot resolve path")?;
    let uri = url::Url::from_file_path(&absolute).map_err(|_| anyhow::anyhow!("cannot make a file URI"))?;
    let camera = setup.camera.as_ref();
    let detect_fps = camera.map_or(args.detect_fps, |c| c.detect_fps);
    let camera_id = camera.map_or_else(|| "analyze".to_string(), |c| c.id.clone());
    let settings = SourceSettings::new(camera_id.clone(), CameraUrl::new(uri.as_str()), detect_fps, camera.map_or(args.max_frame_width, |c| c.max_frame_width), Mode::Offline);
    let origin = Arc::new(Origin { site: setup.site.clone(), camera: camera_id });
    let mut health = CameraHealth::new(&setup.health, 0.0);
    let record = Arc::new(CameraRecord::new("analyze", detect_fps, CameraState::Connecting));
    let mut pipeline = Pipeline::open(settings, record).map_err(|e| anyhow::anyhow!(e.message))?;
    let started = chrono::Utc::now();
    let mut idle = Duration::ZERO;
    loop {
        match pipeline.next(Duration::from_millis(500)).map_err(|e| anyhow::anyhow!(e.message))? {
            Next::Frame(frame) => {
                idle = Duration::ZERO;
                let stream_s = frame.pts.map_or(frame.seq as f64 / detect_fps, |p| p.as_secs_f64());
                let at = started + chrono::Duration::milliseconds((stream_s * 1000.0) as i64);
                for change in health.on_frame(frame.view().ok().as_ref(), stream_s) {
                    each(&Finding::health(origin.clone(), &change, at, stream_s - change.since_s, setup.health.severity), stream_s);
                }
            }
            Next::Eos => return Ok(()),
            Next::Timeout => {
                idle += Duration::from_millis(500);
                if idle >= Duration::from_secs(30) {
                    anyhow::bail!("no frame decoded for 30 s");
                }
            }
        }
    }
}
