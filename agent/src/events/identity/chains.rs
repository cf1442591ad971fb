//! The chains the builder keeps, one per vehicle or person passing, and the identity decisions taken after
//! tracking: a confirmed track that is part of a followed vehicle joins it, a track of a vehicle that
//! ended hands its chain on, a vehicle with a plate lost inside the frame is remembered, and chains that
//! read the same plate in the same place become one.

use std::collections::BTreeMap;

use models::BBox;

use super::{at_edge, nested, picked_up, JOIN_NESTED, SAME_PLATE_IOU, STILL_BEFORE_LOST_S};
use crate::events::active::{Active, Emitter};
use crate::events::{EventOut, FrameTime};

/// The followed objects of one camera, by track.
#[derive(Default)]
pub(in crate::events) struct Chains {
    active: BTreeMap<u64, Active>,
    /// Tracks found to be part of another track's vehicle: track id -> the key of that vehicle in `active`.
    aliases: BTreeMap<u64, u64>,
    /// Vehicles with a plate lost inside the frame, remembered for `plate_memory_s`.
    parked: Vec<Active>,
}

/// Two boxes of chains reading the same plate are one vehicle: they overlap, or one lies inside the other.
fn same_place(a: &BBox, b: &BBox) -> bool {
    a.iou(b) >= SAME_PLATE_IOU || nested(a, b, JOIN_NESTED)
}

impl Chains {
    /// Objects followed (confirmed or not), and vehicles remembered after being lost in view.
    pub fn len(&self) -> usize {
        self.active.len() + self.parked.len()
    }

    /// The objects followed now.
    pub fn followed(&self) -> impl Iterator<Item = &Active> {
        self.active.values()
    }

    pub fn followed_mut(&mut self) -> impl Iterator<Item = &mut Active> {
        self.active.values_mut()
    }

    /// Where a matched track's observations go: its own chain (`false`), or the chain of the vehicle it
    /// is part of (`true`). `None` when that vehicle's chain is gone: the track is part of nothing any more.
    pub fn route(&mut self, track: u64) -> Option<(u64, bool)> {
        match self.aliases.get(&track) {
            None => Some((track, false)),
            Some(key) if self.active.contains_key(key) => Some((*key, true)),
            Some(_) => {
                self.aliases.remove(&track);
                None
            }
        }
    }

    /// The chain at `key`, made by `new` if there is none.
    pub fn entry(&mut self, key: u64, new: impl FnOnce() -> Active) -> &mut Active {
        self.active.entry(key).or_insert_with(new)
    }

    /// Track `id` was confirmed: it joins the vehicle it is part of, or its chain is confirmed and comes
    /// back to be announced — unless it was confirmed before (a vehicle that came back from plate memory
    /// has had its `new`).
    pub fn confirm(&mut self, id: u64, now_s: f64) -> Option<&mut Active> {
        if let Some(vehicle) = self.join_target(id, now_s) {
            self.join(id, vehicle);
            return None;
        }
        let a = self.active.get_mut(&id).filter(|a| !a.confirmed)?;
        a.confirmed = true;
        a.last_update_s = now_s;
        Some(a)
    }

    /// The tracker gave up on track `id` before confirming it.
    pub fn dropped(&mut self, id: u64) {
        self.active.remove(&id);
        self.aliases.remove(&id);
    }

    /// The vehicle a just-confirmed track is part of: a followed vehicle of the same kind that it lies
    /// inside (or that lies inside it), or that reads the same plate where it is — unless both have plates
    /// and they differ.
    fn join_target(&self, id: u64, now_s: f64) -> Option<u64> {
        let a = self.active.get(&id)?;
        if !a.class.carries_plate() {
            return None;
        }
        let plate = a.plates.result().map(|p| p.text);
        self.active
            .iter()
            // Only a vehicle seen in this very frame: a lost one's last box is where it was, not where it is.
            .filter(|(k, b)| **k != id && b.confirmed && b.last_seen_s == now_s && b.class.track_group() == a.class.track_group())
            .find(|(_, b)| {
                let other = b.plates.result().map(|p| p.text);
                match (&plate, &other) {
                    (Some(x), Some(y)) if x != y => false,
                    (Some(_), Some(_)) => same_place(&a.last_box, &b.last_box),
                    _ => nested(&a.last_box, &b.last_box, JOIN_NESTED),
                }
            })
            .map(|(k, _)| *k)
    }

    /// Makes track `id` part of the vehicle at `vehicle`: what it saw joins that chain.
    fn join(&mut self, id: u64, vehicle: u64) {
        if let Some(part) = self.active.remove(&id) {
            if let Some(whole) = self.active.get_mut(&vehicle) {
                whole.absorb(part);
            }
        }
        self.alias(id, vehicle);
    }

    fn alias(&mut self, id: u64, vehicle: u64) {
        self.repoint(id, vehicle);
        self.aliases.insert(id, vehicle);
    }

    /// Tracks that were part of the vehicle at `from` are now part of the vehicle at `to`.
    fn repoint(&mut self, from: u64, to: u64) {
        for k in self.aliases.values_mut() {
            if *k == from {
                *k = to;
            }
        }
    }

    /// A track ended: the end of its chain, unless it was part of another vehicle, another track of its
    /// vehicle carries on, or it is a vehicle with a plate lost inside the frame (remembered while
    /// `plate_memory_s` is above zero).
    pub fn track_ended(&mut self, id: u64, t: FrameTime, plate_memory_s: f64, emitter: &Emitter<'_>) -> Option<EventOut> {
        if self.aliases.remove(&id).is_some() {
            return None;
        }
        if let Some(heir) = self.aliases.iter().find(|(_, k)| **k == id).map(|(x, _)| *x) {
            let a = self.active.remove(&id)?;
            self.aliases.remove(&heir);
            self.repoint(id, heir);
            self.active.insert(heir, a);
            return None;
        }
        let a = self.active.get(&id)?;
        let remember = plate_memory_s > 0.0
            && a.confirmed
            && a.last_seen_s - a.moved.at_s >= STILL_BEFORE_LOST_S
            && a.class.carries_plate()
            && !a.plates.is_empty()
            && !at_edge(&a.last_box, emitter.frame.width, emitter.frame.height);
        let mut a = self.active.remove(&id)?;
        if remember {
            self.parked.push(a);
            return None;
        }
        emitter.end(&mut a, t)
    }

    /// Chains that turn out to be one vehicle by their plate: a vehicle remembered after being lost takes
    /// back the chain now reading its plate; two live chains reading the same plate in the same place
    /// become the older one. A chain that already had its `new` ends with `merged_into`.
    pub fn merge_by_plate(&mut self, t: FrameTime, emitter: &Emitter<'_>) -> Vec<EventOut> {
        let mut out = self.take_back_parked(t, emitter);
        // Chains reading the same plate that are one vehicle: seen together in this frame in the same
        // place; or picked up again — under load the tracker can lose a moving vehicle between two analysed
        // frames and start a new track a step further on, so a chain first seen after a followed vehicle was
        // lost, near where it was lost and ahead of it, is that vehicle.
        loop {
            let plated: Vec<(u64, String, &Active)> =
                self.active.iter().filter(|(_, a)| a.confirmed && a.class.carries_plate()).filter_map(|(k, a)| a.plates.result().map(|p| (*k, p.text, a))).collect();
            let now = |a: &Active| a.last_seen_s == t.stream_s;
            let pairs = || plated.iter().flat_map(|o| plated.iter().map(move |y| (o, y))).filter(|(o, y)| o.1 == y.1 && now(y.2));
            // Event ids are UUIDv7: the smaller is the older chain.
            let together = pairs().find(|(o, y)| now(o.2) && o.2.event_id < y.2.event_id && same_place(&o.2.last_box, &y.2.last_box));
            let merge = match together {
                Some((o, y)) => Some((o.0, y.0, true)),
                None => {
                    pairs().find(|(o, y)| !now(o.2) && o.2.last_wall < y.2.first_wall && picked_up(&o.2.first_box, &o.2.last_box, &y.2.first_box)).map(|(o, y)| (o.0, y.0, false))
                }
            };
            let Some((older, younger, together)) = merge else { break };
            let (Some(mut kept), Some(mut merged)) = (self.active.remove(&older), self.active.remove(&younger)) else { break };
            merged.merged_into = Some(kept.event_id.clone());
            out.extend(emitter.end(&mut merged, t));
            if together {
                kept.absorb(merged);
                self.active.insert(older, kept);
                self.alias(younger, older);
            } else {
                // The lost vehicle goes on as the new track.
                kept.take_over(merged);
                self.active.insert(younger, kept);
                self.alias(older, younger);
            }
        }
        out
    }

    /// A remembered vehicle that comes back where it stood (or near) takes the chain now reading its
    /// plate; the same plate elsewhere is another passing.
    fn take_back_parked(&mut self, t: FrameTime, emitter: &Emitter<'_>) -> Vec<EventOut> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.parked.len() {
            let text = self.parked[i].plates.result().map(|p| p.text);
            let stood = self.parked[i].last_box;
            let back = self.active.iter().find(|(_, a)| a.class.carries_plate() && a.plates.result().map(|p| p.text) == text && same_place(&a.last_box, &stood)).map(|(k, _)| *k);
            match back.and_then(|k| self.active.remove(&k).map(|a| (k, a))) {
                Some((k, mut newer)) => {
                    let mut returned = self.parked.remove(i);
                    if newer.confirmed {
                        newer.merged_into = Some(returned.event_id.clone());
                        out.extend(emitter.end(&mut newer, t));
                    }
                    returned.take_over(newer);
                    self.active.insert(k, returned);
                }
                None => i += 1,
            }
        }
        out
    }

    /// Ends the remembered vehicles whose memory (`plate_memory_s`) ran out.
    pub fn forget_parked(&mut self, t: FrameTime, plate_memory_s: f64, emitter: &Emitter<'_>) -> Vec<EventOut> {
        let (gone, kept): (Vec<Active>, Vec<Active>) = std::mem::take(&mut self.parked).into_iter().partition(|a| t.stream_s - a.last_seen_s > plate_memory_s);
        self.parked = kept;
        gone.into_iter().filter_map(|mut a| emitter.end(&mut a, t)).collect()
    }

    /// Ends every chain (end of stream, shutdown, a gap in the video).
    pub fn finish(&mut self, t: FrameTime, emitter: &Emitter<'_>) -> Vec<EventOut> {
        self.aliases.clear();
        let mut out: Vec<EventOut> = std::mem::take(&mut self.active).into_values().filter_map(|mut a| emitter.end(&mut a, t)).collect();
        out.extend(std::mem::take(&mut self.parked).into_iter().filter_map(|mut a| emitter.end(&mut a, t)));
        out
    }
}
