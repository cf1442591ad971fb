//! Flow counts: per camera and period (an hour by default), people and vehicles by direction (`in`, `out`,
//! none), plates read and alerts raised. They are counted from the messages the camera publishes — each
//! `end` event in the period its message was made (`ts`), each alert likewise — so the counts agree exactly
//! with the `end` events published for that period. A period closes a few seconds after it ends (events of
//! its last frames are still being made) and goes to `{prefix}/{site}/{camera}/counts` through the outbox.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::events::geometry::Direction;
use crate::events::{ObjectEvent, Phase};
use models::ObjectKind;

pub const COUNTS_SCHEMA: &str = "edge-agent/counts/v1";
/// How long after its end a period closes.
pub const GRACE_SECS: i64 = 5;

/// Objects by direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByDirection {
    #[serde(rename = "in", default)]
    pub inbound: u64,
    #[serde(rename = "out", default)]
    pub outbound: u64,
    /// No line crossed.
    #[serde(default)]
    pub none: u64,
}

impl ByDirection {
    fn add(&mut self, d: Option<Direction>) {
        match d {
            Some(Direction::In) => self.inbound += 1,
            Some(Direction::Out) => self.outbound += 1,
            None => self.none += 1,
        }
    }
}

/// One period's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub people: ByDirection,
    pub vehicles: ByDirection,
    /// Vehicles whose `end` event carries a plate.
    pub plates_read: u64,
    pub alerts: u64,
}

/// `{prefix}/{site}/{camera}/counts`.
#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub schema: &'static str,
    pub site: String,
    pub camera: String,
    pub period_start: String,
    pub period_end: String,
    #[serde(flatten)]
    pub tally: Tally,
}

/// One camera's open periods.
#[derive(Debug)]
pub struct FlowCounter {
    period_secs: i64,
    open: Mutex<BTreeMap<i64, Tally>>,
}

impl FlowCounter {
    pub fn new(period_secs: u32) -> Self {
        Self { period_secs: i64::from(period_secs.max(1)), open: Mutex::new(BTreeMap::new()) }
    }

    fn period_of(&self, t: DateTime<Utc>) -> i64 {
        t.timestamp().div_euclid(self.period_secs) * self.period_secs
    }

    fn with(&self, t: DateTime<Utc>, f: impl FnOnce(&mut Tally)) {
        let start = self.period_of(t);
        f(self.open.lock().unwrap_or_else(|p| p.into_inner()).entry(start).or_default());
    }

    /// An event as published: `end` events count, except those of chains merged into another.
    pub fn on_event(&self, e: &ObjectEvent) {
        if e.phase != Phase::End || e.merged_into.is_some() {
            return;
        }
        self.with(e.at, |t| match e.kind() {
            ObjectKind::Person => t.people.add(e.direction),
            ObjectKind::Vehicle => {
                t.vehicles.add(e.direction);
                if e.plate.is_some() {
                    t.plates_read += 1;
                }
            }
        });
    }

    /// An alert as published.
    pub fn on_alert(&self, at: DateTime<Utc>) {
        self.with(at, |t| t.alerts += 1);
    }

    /// The periods still open (not yet published), with their start and end, oldest first: what the duty
    /// desk adds to the closed ones for today's chart.
    pub fn open_periods(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>, Tally)> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.iter()
            .filter_map(|(p, t)| {
                let start = Utc.timestamp_opt(*p, 0).single()?;
                Some((start, start + chrono::Duration::seconds(self.period_secs), *t))
            })
            .collect()
    }

    /// Takes the periods that closed by `now` (with their start), oldest first. A period with nothing in
    /// it is reported too, once the camera has counted anything at all since the agent started.
    pub fn close(&self, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>, Tally)> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.period_of(now - chrono::Duration::seconds(GRACE_SECS));
        // Periods before the current one that saw nothing still get a (zero) report.
        if let Some(first) = open.keys().next().copied() {
            let mut p = first;
            while p < current {
                open.entry(p).or_default();
                p += self.period_secs;
            }
        }
        let closed: Vec<i64> = open.keys().copied().filter(|p| *p < current).collect();
        closed
            .into_iter()
            .filter_map(|p| {
                let tally = open.remove(&p)?;
                // Keep the next period open so empty periods after this one are reported as well.
                open.entry(p + self.period_secs).or_default();
                let start = Utc.timestamp_opt(p, 0).single()?;
                Some((start, start + chrono::Duration::seconds(self.period_secs), tally))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_close_after_a_grace_and_empty_ones_are_reported_too() {
        let c = FlowCounter::new(3600);
        let t0: DateTime<Utc> = "2026-11-29T08:10:00Z".parse().unwrap_or_default();
        c.on_alert(t0);
        assert!(c.close(t0 + chrono::Duration::minutes(49)).is_empty(), "08:00 is still open at 08:59");
        assert!(c.close("2026-11-29T09:00:03Z".parse().unwrap_or_default()).is_empty(), "within the grace");
        let closed = c.close("2026-11-29T10:30:00Z".parse().unwrap_or_default());
        let starts: Vec<String> = closed.iter().map(|(s, _, _)| s.to_rfc3339()).collect();
        assert_eq!(starts, ["2026-11-29T08:00:00+00:00", "2026-11-29T09:00:00+00:00"]);
        assert_eq!((closed[0].2.alerts, closed[1].2.alerts), (1, 0));
        assert!(c.close("2026-11-29T10:30:00Z".parse().unwrap_or_default()).is_empty(), "each period once");
    }
}
