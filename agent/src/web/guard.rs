//! Limits on guessing: sign-in and set-up attempts can neither exhaust the machine nor guess fast, and a
//! guesser cannot spend the real operator's budget.
//!
//! - At most [`CHECKS_AT_ONCE`] password checks (Argon2id, about 19 MiB each) run at a time; a request that
//!   cannot get a slot within [`CHECK_WAIT`] is answered `429` without checking anything. Memory is bounded
//!   however many requests arrive, and at most that many blocking threads are busy.
//! - Failures are counted per (account, address), per address, and per account. After a few free failures
//!   each further one blocks that key for a time that doubles (1 s, 2 s, 4 s … up to 15 min); while
//!   blocked, requests are answered `429` with `Retry-After` before any check.
//! - The per-account count applies only to browsers the account has not signed in from before: a browser
//!   with a valid device cookie for the account ([`super::device`]) is limited by its own failures alone.
//!   So an address guessing the operator's password without end keeps new browsers out of that account but
//!   never the operator's own; and a desk already signed in is never signed out by anyone's failures.
//! - A success clears what the attempt's own keys counted (the account's count only for a browser that was
//!   not recognised: the operator's sign-in does not hand a guesser fresh free tries).
//! - The tables are bounded ([`MAX_ENTRIES`]): expired entries go first, then the least recently seen.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use super::device::Device;

/// Password checks running at once.
pub const CHECKS_AT_ONCE: usize = 2;
/// Longest a request waits for a check slot.
pub const CHECK_WAIT: Duration = Duration::from_secs(3);
/// Failures an account may have (from browsers it does not know) before each further one blocks it for
/// them; the same for one (account, address) pair and for one recognised browser.
const FREE_PER_ACCOUNT: u32 = 3;
/// Failures an address may have before each further one blocks it (several people share a duty PC).
const FREE_PER_ADDRESS: u32 = 10;
/// Longest block.
const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);
/// Entries kept per table.
const MAX_ENTRIES: usize = 4096;
/// An account under attack is reported again after this many more failures.
const REPORT_EVERY: u32 = 20;

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

    /// Counts a failure; returns the count.
    fn fail(&mut self, key: K, now: Instant) -> u32 {
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
        s.count
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
    by_pair: Table<(IpAddr, String)>,
    by_address: Table<IpAddr>,
    /// Failures of browsers the account does not know.
    by_account: Table<String>,
    by_device: Table<String>,
    /// Failed attempts since the last [`Guard::take_failed`], by address.
    recent: HashMap<IpAddr, u64>,
}

/// One sign-in attempt, as the limits tell attempts apart.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub address: IpAddr,
    pub account: &'a str,
    /// A valid device cookie for this account.
    pub device: Option<&'a Device>,
}

/// What the limits saw, for `/metrics`.
#[derive(Debug, Default)]
pub struct GuardCounters {
    /// Wrong passwords (or names).
    pub failures_total: AtomicU64,
    /// Attempts answered `429` before any check: a blocked key, or no check slot.
    pub refused_total: AtomicU64,
    /// Sign-ins by a recognised browser while its account was blocked for new browsers.
    pub recognised_while_blocked_total: AtomicU64,
}

/// The sign-in limits of one web server.
#[derive(Debug)]
pub struct Guard {
    checks: Semaphore,
    failures: Mutex<Failures>,
    pub counters: GuardCounters,
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
            failures: Mutex::new(Failures {
                by_pair: Table::new(FREE_PER_ACCOUNT),
                by_address: Table::new(FREE_PER_ADDRESS),
                by_account: Table::new(FREE_PER_ACCOUNT),
                by_device: Table::new(FREE_PER_ACCOUNT),
                recent: HashMap::new(),
            }),
            counters: GuardCounters::default(),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(retry_after)` while one of the attempt's keys is blocked.
    pub fn admit(&self, a: Attempt<'_>) -> Result<(), Duration> {
        let now = Instant::now();
        let f = self.failures();
        let blocked = match a.device {
            Some(device) => f.by_device.blocked(&device.0, now),
            None => [f.by_pair.blocked(&(a.address, a.account.to_string()), now), f.by_address.blocked(&a.address, now), f.by_account.blocked(&a.account.to_string(), now)]
                .into_iter()
                .flatten()
                .max(),
        };
        drop(f);
        match blocked {
            None => Ok(()),
            Some(wait) => {
                self.counters.refused_total.fetch_add(1, Ordering::Relaxed);
                Err(wait)
            }
        }
    }

    /// A slot to run one check in, or `None` when none frees up within [`CHECK_WAIT`].
    pub async fn slot(&self) -> Option<SemaphorePermit<'_>> {
        let slot = tokio::time::timeout(CHECK_WAIT, self.checks.acquire()).await.ok().and_then(Result::ok);
        if slot.is_none() {
            self.counters.refused_total.fetch_add(1, Ordering::Relaxed);
        }
        slot
    }

    /// Counts a failed attempt. Returns the account's count of failures from browsers it does not know when
    /// it has just become blocked for them, and every [`REPORT_EVERY`] failures after (an attack to
    /// report).
    pub fn failed(&self, a: Attempt<'_>) -> Option<u32> {
        let now = Instant::now();
        self.counters.failures_total.fetch_add(1, Ordering::Relaxed);
        let mut f = self.failures();
        if f.recent.len() < MAX_ENTRIES || f.recent.contains_key(&a.address) {
            *f.recent.entry(a.address).or_insert(0) += 1;
        }
        if let Some(device) = a.device {
            f.by_device.fail(device.0.clone(), now);
            return None;
        }
        f.by_pair.fail((a.address, a.account.to_string()), now);
        f.by_address.fail(a.address, now);
        let count = f.by_account.fail(a.account.to_string(), now);
        let over = count.checked_sub(FREE_PER_ACCOUNT + 1)?;
        (over % REPORT_EVERY == 0).then_some(count)
    }

    /// Clears what the attempt's own keys counted.
    pub fn succeeded(&self, a: Attempt<'_>) {
        let mut f = self.failures();
        let account = a.account.to_string();
        if let Some(device) = a.device {
            if f.by_account.blocked(&account, Instant::now()).is_some() {
                self.counters.recognised_while_blocked_total.fetch_add(1, Ordering::Relaxed);
            }
            f.by_device.clear(&device.0);
        } else {
            f.by_account.clear(&account);
            f.by_address.clear(&a.address);
        }
        f.by_pair.clear(&(a.address, account));
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

    fn new_browser(address: IpAddr, account: &str) -> Attempt<'_> {
        Attempt { address, account, device: None }
    }

    #[test]
    fn an_account_is_blocked_for_doubling_times_after_a_few_failures_and_cleared_by_a_success() {
        let g = Guard::new();
        for _ in 0..FREE_PER_ACCOUNT {
            assert!(g.admit(new_browser(A, "duty")).is_ok());
            g.failed(new_browser(A, "duty"));
        }
        assert!(g.admit(new_browser(A, "duty")).is_ok(), "the free failures block nothing");
        g.failed(new_browser(A, "duty"));
        let first = g.admit(new_browser(B, "duty")).unwrap_err();
        assert!(first <= Duration::from_secs(1) && first > Duration::ZERO, "{first:?}");
        g.failed(new_browser(B, "duty"));
        assert!(g.admit(new_browser(B, "duty")).unwrap_err() > Duration::from_secs(1), "the block doubles");
        assert!(g.admit(new_browser(B, "other")).is_ok(), "other accounts are not blocked");
        g.succeeded(new_browser(B, "duty"));
        assert!(g.admit(new_browser(B, "duty")).is_ok());
        assert_eq!(g.take_failed().values().sum::<u64>(), 5);
        assert!(g.take_failed().is_empty());
        assert_eq!(g.counters.failures_total.load(Ordering::Relaxed), 5);
        assert!(g.counters.refused_total.load(Ordering::Relaxed) >= 2);
    }

    #[test]
    fn a_guesser_elsewhere_never_blocks_a_browser_the_account_knows() {
        let g = Guard::new();
        let operator = Device("0123456789abcdef0123456789abcdef".into());
        let mut reports = Vec::new();
        for _ in 0..(FREE_PER_ACCOUNT + 1 + REPORT_EVERY) {
            reports.extend(g.failed(new_browser(A, "duty")));
        }
        assert!(g.admit(new_browser(A, "duty")).is_err(), "the guesser is slowed down as before");
        assert!(g.admit(new_browser(B, "duty")).is_err(), "a new browser elsewhere is kept out of the account");
        let known = Attempt { address: B, account: "duty", device: Some(&operator) };
        assert!(g.admit(known).is_ok(), "the operator's own browser is not");
        g.succeeded(known);
        assert_eq!(g.counters.recognised_while_blocked_total.load(Ordering::Relaxed), 1);
        assert!(g.admit(new_browser(A, "duty")).is_err(), "the operator's sign-in gives the guesser no fresh tries");
        assert_eq!(reports, [FREE_PER_ACCOUNT + 1, FREE_PER_ACCOUNT + 1 + REPORT_EVERY], "the attack is reported when the block starts and as it goes on");
    }

    #[test]
    fn a_recognised_browser_is_limited_by_its_own_failures() {
        let g = Guard::new();
        let device = Device("fedcba9876543210fedcba9876543210".into());
        let known = Attempt { address: A, account: "duty", device: Some(&device) };
        for _ in 0..=FREE_PER_ACCOUNT {
            assert!(g.failed(known).is_none());
        }
        assert!(g.admit(known).is_err(), "a stolen device cookie does not guess fast either");
        assert!(g.admit(new_browser(B, "duty")).is_ok(), "and its failures do not block the account");
    }

    #[test]
    fn an_address_guessing_many_accounts_is_blocked() {
        let g = Guard::new();
        for i in 0..=FREE_PER_ADDRESS {
            g.failed(new_browser(A, &format!("user{i}")));
        }
        assert!(g.admit(new_browser(A, "fresh")).is_err());
        assert!(g.admit(new_browser(B, "fresh")).is_ok());
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
