//! A watch list indexed for matching a plate read in microseconds, however long the list (a town's list
//! can hold tens of thousands of plates): exact reads by hash, and reads with one misread character by one
//! key per position (the plate with that position blanked), so a read costs a handful of lookups.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{normalise_plate, Listed, PlateMatch};

/// The listed plates of one watch-list rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchIndex {
    entries: Vec<Listed>,
    exact: HashMap<String, Vec<usize>>,
    /// (position, plate with that character removed) → entries.
    blanked: HashMap<(usize, String), Vec<usize>>,
}

fn without(chars: &[char], i: usize) -> String {
    chars.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, c)| *c).collect()
}

impl WatchIndex {
    /// Indexes normalised entries; with `tolerance` 0 only the exact index is built.
    pub fn new(entries: Vec<Listed>, tolerance: u8) -> Self {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut blanked: HashMap<(usize, String), Vec<usize>> = HashMap::new();
        for (n, e) in entries.iter().enumerate() {
            exact.entry(e.plate.clone()).or_default().push(n);
            if tolerance >= 1 {
                let chars: Vec<char> = e.plate.chars().collect();
                for i in 0..chars.len() {
                    blanked.entry((i, without(&chars, i))).or_default().push(n);
                }
            }
        }
        Self { entries, exact, blanked }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The best entry in force at `now` that `read` matches: exact first, then (with `tolerance` 1) one
    /// differing character at the same position. Insertions and deletions never match.
    pub fn find(&self, read: &str, tolerance: u8, now: DateTime<Utc>) -> Option<(PlateMatch, &Listed)> {
        let read = normalise_plate(read);
        let live = |n: &usize| self.entries.get(*n).filter(|e| e.until.is_none_or(|u| u > now));
        if let Some(e) = self.exact.get(&read).into_iter().flatten().find_map(live) {
            return Some((PlateMatch { entry: e.plate.clone(), distance: 0, position: None }, e));
        }
        if tolerance == 0 {
            return None;
        }
        let chars: Vec<char> = read.chars().collect();
        (0..chars.len()).find_map(|i| {
            let found = self.blanked.get(&(i, without(&chars, i)))?.iter().find_map(live)?;
            Some((PlateMatch { entry: found.plate.clone(), distance: 1, position: Some(i) }, found))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(plate: &str, until: Option<&str>) -> Listed {
        Listed { plate: normalise_plate(plate), until: until.and_then(|u| u.parse().ok()), reason: None }
    }

    #[test]
    fn misreads_are_found_by_position_and_expired_entries_never_match() {
        let index = WatchIndex::new(["苏ED51712", "京PL3N67"].iter().map(|p| listed(p, None)).collect(), 1);
        let now = Utc::now();
        let found = |read: &str, tolerance: u8| index.find(read, tolerance, now).map(|(m, _)| (m.distance, m.position));
        assert_eq!(found("苏E·D51712", 0), Some((0, None)));
        assert_eq!(found("京PL3B67", 0), None);
        assert_eq!(found("京PL3B67", 1), Some((1, Some(4))));
        assert_eq!(found("苏XD51712", 1), Some((1, Some(1))));
        assert_eq!(found("京PL3B68", 1), None, "two differences");
        assert_eq!(found("京PL3N6", 1), None, "a missing character");
        let expired = WatchIndex::new(vec![listed("苏ED51712", Some("2020-01-01T00:00:00Z"))], 1);
        assert!(expired.find("苏ED51712", 1, now).is_none());
    }
}
