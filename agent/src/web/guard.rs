//! Limits on guessing: sign-in and set-up attempts can neither exhaust the machine nor guess fast.
//!
//! - At most [`CHECKS_AT_ONCE`] password checks (Argon2id, about 19 MiB each) run at a time; a request that
//!   cannot get a slot within [`CHECK_WAIT`] is answered `429` without checking anything. Memory is bounded
//!   however many requests arrive, and at most that many blocking threads are busy.
//! - Failures are counted per address and per account. After a few free failures each further one blocks
//!   that address or account for a time that doubles (1 s, 2 s, 4 s … up to 15 min); while blocked, requests
//!   are answered `429` with `Retry-After` before any check. A success clears the account and the address.
//! - The tables are bounded ([`MAX_ENTRIES`]): expired entries go first, then the least recently seen.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Password checks running at once.
pub const CHECKS_AT_ONCE: usize = 2;
/// Longest a request waits for a check slot.
pub const CHECK_WAIT: Duration = Duration::from_secs(3);
/// Failures an account may have before each further one blocks it.
const FREE_PER_ACCOUNT: u32 = 3;
/// Failures an address may have before each further one blocks it (several people share a duty PC).
const FREE_PER_ADDRESS: u32 = 10;
/// Longest block.
const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);
/// Entries kept per table.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Strikes {
    count: u32,
    blocked_until: Option<Instant>,
    last: Instant,
}

/// Failures by key, bounded.
#[derive(Debug)]
struct Table<K> {
    free: u32,
    entries: HashMap<K, Strikes>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(free: u32) -> Self {
        Self { free, entries: HashMap::new() }
    }

    fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        self.entries.get(key).and_then(|s| s.blocked_until).filter(|until| *until > now).map(|until| until - now)
    }

    fn fail(&mut self, key: K, now: Instant) {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_ENTRIES {
            self.make_room(now);
        }
        let s = self.entries.entry(key).or_insert(Strikes { count: 0, blocked_until: None, last: now });
        s.count += 1;
        s.last = now;
        if s.count > self.free {
            let exponent = (s.count - self.free - 1).min(20);
            s.blocked_until = Some(now + Duration::from_secs(1u64 << exponent).min(MAX_BLOCK));
        }
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }

    fn make_room(&mut self, now: Instant) {
        self.entries.retain(|_, s| s.blocked_until.is_some_and(|u| u > now) || now.duration_since(s.last) < Duration::from_secs(3600));
        if self.entries.len() >= MAX_ENTRIES {
            if let Some(oldest) = self.entries.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| k.clone()) {
                self.entries.remove(&oldest);
            }
        }
    }
}

#[derive(Debug)]
struct Failures {
    by_address: Table<IpAddr>,
    by_account: Table<String>,
    /// Failed attempts since the last [`Guard::take_failed`], by address.
    recent: HashMap<IpAddr, u64>,
}

/// The sign-in limits of one web server.
#[derive(Debug)]
pub struct Guard {
    checks: Semaphore,
    failures: Mutex<Failures>,
}

impl Default for Guard {
    fn default() -> Self {
        Self::new()
    }
}

impl Guard {
    pub fn new() -> Self {
        Self {
            checks: Semaphore::new(CHECKS_AT_ONCE),
            failures: Mutex::new(Failures { by_address: Table::new(FREE_PER_ADDRESS), by_account: Table::new(FREE_PER_ACCOUNT), recent: HashMap::new() }),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(retry_after)` while the address or the account is blocked.
    pub fn admit(&self, address: IpAddr, account: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let f = self.failures();
        match (f.by_address.blocked(&address, now), f.by_account.blocked(&account.to_string(), now)) {
            (None, None) => Ok(()),
            (a, b) => Err(a.max(b).unwrap_or_default()),
        }
    }

    /// A slot to run one check in, or `None` when none frees up within [`CHECK_WAIT`].
    pub async fn slot(&self) -> Option<SemaphorePermit<'_>> {
        tokio::time::timeout(CHECK_WAIT, self.checks.acquire()).await.ok().and_then(Result::ok)
    }

    pub fn failed(&self, address: IpAddr, account: &str) {
        let now = Instant::now();
        let mut f = self.failures();
        f.by_address.fail(address, now);
        f.by_account.fail(account.to_string(), now);
        if f.recent.len() < MAX_ENTRIES || f.recent.contains_key(&address) {
            *f.recent.entry(address).or_insert(0) += 1;
        }
    }

    pub fn succeeded(&self, address: IpAddr, account: &str) {
        let mut f = self.failures();
        f.by_address.clear(&address);
        f.by_account.clear(&account.to_string());
    }

    /// Failed attempts since the last call, by address (for the audit log).
    pub fn take_failed(&self) -> HashMap<IpAddr, u64> {
        std::mem::take(&mut self.failures().recent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn an_account_is_blocked_for_doubling_times_after_a_few_failures_and_cleared_by_a_success() {
        let g = Guard::new();
        for _ in 0..FREE_PER_ACCOUNT {
            assert!(g.admit(A, "duty").is_ok());
            g.failed(A, "duty");
        }
        assert!(g.admit(A, "duty").is_ok(), "the free failures block nothing");
        g.failed(A, "duty");
        let first = g.admit(B, "duty").unwrap_err();
        assert!(first <= Duration::from_secs(1) && first > Duration::ZERO, "{first:?}");
        g.failed(B, "duty");
        assert!(g.admit(B, "duty").unwrap_err() > Duration::from_secs(1), "the block doubles");
        assert!(g.admit(B, "other").is_ok(), "other accounts are not blocked");
        g.succeeded(B, "duty");
        assert!(g.admit(B, "duty").is_ok());
        assert_eq!(g.take_failed().values().sum::<u64>(), 5);
        assert!(g.take_failed().is_empty());
    }

    #[test]
    fn an_address_guessing_many_accounts_is_blocked() {
        let g = Guard::new();
        for i in 0..=FREE_PER_ADDRESS {
            g.failed(A, &format!("user{i}"));
        }
        assert!(g.admit(A, "fresh").is_err());
        assert!(g.admit(B, "fresh").is_ok());
    }

    #[test]
    fn the_tables_stay_bounded() {
        let mut t = Table::new(0);
        let now = Instant::now();
        for i in 0..(MAX_ENTRIES as u32 + 100) {
            t.fail(format!("u{i}"), now);
        }
        assert!(t.entries.len() <= MAX_ENTRIES);
    }

    #[tokio::test]
    async fn only_a_few_checks_run_at_once() {
        let g = Guard::new();
        let mut held = Vec::new();
        for _ in 0..CHECKS_AT_ONCE {
            held.push(g.slot().await);
        }
        assert!(held.iter().all(Option::is_some));
        assert!(g.checks.try_acquire().is_err(), "no slot while all are held");
        held.pop();
        assert!(g.slot().await.is_some());
    }
}
