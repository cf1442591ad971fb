//! One camera's pre-capture ring: the MP4 fragments its recorder closed, with the wall-clock time each
//! covers, bounded by seconds and bytes. Fragments an open event may still need (its start minus the
//! pre-capture) are pinned and outlive the seconds bound, never the bytes bound.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// One closed fragment.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    pub path: PathBuf,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub bytes: u64,
}

/// Whether the camera can have clips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingStatus {
    /// No stream seen yet.
    Waiting,
    /// Recording the camera's stream (`h264` or `h265`).
    Recording(&'static str),
    /// The camera's stream cannot be recorded without re-encoding it (MJPEG, raw video): no clips.
    Unavailable(String),
    /// The recorder failed (a full or failing disk); it starts again 10 s later.
    Failed(String),
}

impl RingStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RingStatus::Waiting => "waiting",
            RingStatus::Recording(_) => "recording",
            RingStatus::Unavailable(_) => "unavailable",
            RingStatus::Failed(_) => "failed",
        }
    }

    /// Why there are no clips, in words.
    pub fn reason(&self) -> Option<&str> {
        match self {
            RingStatus::Unavailable(r) | RingStatus::Failed(r) => Some(r),
            _ => None,
        }
    }
}

struct State {
    status: RingStatus,
    /// Recording sessions started (one per connection): names the fragment files.
    sessions: u32,
    fragments: VecDeque<Fragment>,
    bytes: u64,
    /// Events still open, and the earliest moment their clip may need.
    pins: BTreeMap<String, DateTime<Utc>>,
    /// Fragments deleted before their seconds were up because the ring was over its bytes.
    evicted: u64,
}

/// One camera's ring.
pub struct ClipRing {
    pub camera: String,
    dir: PathBuf,
    /// How far back the ring keeps fragments nothing pins.
    keep_secs: f64,
    max_bytes: u64,
    pub fragment_secs: u32,
    state: Mutex<State>,
}

impl ClipRing {
    /// A ring in `dir` (emptied: fragments left by an earlier run are not indexed).
    pub fn new(camera: &str, dir: PathBuf, keep_secs: f64, max_bytes: u64, fragment_secs: u32) -> std::io::Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let state = State { status: RingStatus::Waiting, sessions: 0, fragments: VecDeque::new(), bytes: 0, pins: BTreeMap::new(), evicted: 0 };
        Ok(Self { camera: camera.to_string(), dir, keep_secs, max_bytes, fragment_secs, state: Mutex::new(state) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn status(&self) -> RingStatus {
        self.lock().status.clone()
    }

    pub fn set_status(&self, status: RingStatus) {
        let mut s = self.lock();
        if s.status != status {
            match &status {
                RingStatus::Recording(codec) => tracing::info!(camera = %self.camera, codec, "recording the camera's stream for clips"),
                RingStatus::Unavailable(why) => tracing::warn!(camera = %self.camera, reason = %why, "no clips for this camera"),
                RingStatus::Failed(why) => tracing::error!(camera = %self.camera, reason = %why, "clip recorder failed"),
                RingStatus::Waiting => {}
            }
        }
        s.status = status;
    }

    /// The file pattern of a new recording session (`splitmuxsink`'s `location`).
    pub fn next_session(&self) -> String {
        let mut s = self.lock();
        s.sessions += 1;
        self.dir.join(format!("{:05}-%06d.mp4", s.sessions)).to_string_lossy().into_owned()
    }

    /// The recorder closed a fragment.
    pub fn closed(&self, fragment: Fragment) {
        let mut s = self.lock();
        s.bytes += fragment.bytes;
        s.fragments.push_back(fragment);
        self.trim(&mut s, Utc::now());
    }

    /// Deletes what is past the bounds: beyond the bytes always, beyond the seconds unless pinned.
    fn trim(&self, s: &mut State, now: DateTime<Utc>) {
        let keep_from = now - chrono::Duration::milliseconds((self.keep_secs * 1000.0) as i64);
        let pinned_from = s.pins.values().min().copied();
        while let Some(front_end) = s.fragments.front().map(|f| f.end) {
            let over_bytes = s.bytes > self.max_bytes && s.fragments.len() > 1;
            let old = front_end < keep_from && pinned_from.is_none_or(|p| front_end < p);
            if !over_bytes && !old {
                break;
            }
            if over_bytes && !old {
                s.evicted += 1;
            }
            let Some(gone) = s.fragments.pop_front() else { break };
            s.bytes = s.bytes.saturating_sub(gone.bytes);
            if let Err(e) = std::fs::remove_file(&gone.path) {
                tracing::debug!(camera = %self.camera, path = %gone.path.display(), error = %e, "ring fragment already gone");
            }
        }
    }

    /// Keeps what an event that started at `from` (pre-capture included) may need.
    pub fn pin(&self, event: &str, from: DateTime<Utc>) {
        self.lock().pins.insert(event.to_string(), from);
    }

    pub fn unpin(&self, event: &str) {
        let mut s = self.lock();
        s.pins.remove(event);
        self.trim(&mut s, Utc::now());
    }

    /// The fragments that cover `from..to`: the last one starting at or before `from` (a clip starts at a
    /// keyframe, so it starts a little earlier rather than later), up to the last one starting before `to`.
    pub fn covering(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Fragment> {
        let s = self.lock();
        let first = s.fragments.iter().rposition(|f| f.start <= from).unwrap_or(0);
        s.fragments.iter().skip(first).filter(|f| f.start < to && f.end > from).cloned().collect()
    }

    /// When the newest closed fragment ends.
    pub fn recorded_until(&self) -> Option<DateTime<Utc>> {
        self.lock().fragments.back().map(|f| f.end)
    }

    /// Fragments and bytes held, fragments evicted for bytes.
    pub fn usage(&self) -> (usize, u64, u64) {
        let s = self.lock();
        (s.fragments.len(), s.bytes, s.evicted)
    }
}

impl std::fmt::Debug for ClipRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipRing").field("camera", &self.camera).field("dir", &self.dir).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn fragment(ring: &ClipRing, i: i64, bytes: u64) -> Fragment {
        let path = ring.dir().join(format!("{i}.mp4"));
        std::fs::write(&path, vec![0u8; bytes as usize]).unwrap();
        Fragment { path, start: at(i * 2), end: at(i * 2 + 2), bytes }
    }

    #[test]
    fn the_ring_keeps_its_seconds_and_bytes_and_what_an_open_event_pins() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ClipRing::new("gate", dir.path().join("gate"), 6.0, 10_000, 2).unwrap();
        // Fragments in the past: "now" is far beyond them, so only pins keep them.
        ring.pin("e1", at(3));
        for i in 0..5 {
            ring.closed(fragment(&ring, i, 1000));
        }
        let kept: Vec<_> = ring.covering(at(0), at(100)).iter().map(|f| f.start).collect();
        assert_eq!(kept, vec![at(2), at(4), at(6), at(8)], "the fragment ending before the pin went, the rest stay");
        assert!(!dir.path().join("gate/0.mp4").exists());
        assert_eq!(ring.covering(at(5), at(7)).iter().map(|f| f.start).collect::<Vec<_>>(), vec![at(4), at(6)], "starts at or before the moment asked for");
        ring.unpin("e1");
        assert_eq!(ring.usage().0, 0, "unpinned, past fragments go");
        // Over the bytes bound the oldest go even when pinned, and that is counted.
        ring.pin("e2", at(0));
        for i in 0..12 {
            ring.closed(fragment(&ring, i, 1000));
        }
        let (n, bytes, evicted) = ring.usage();
        assert_eq!((n, bytes, evicted), (10, 10_000, 2));
    }
}
