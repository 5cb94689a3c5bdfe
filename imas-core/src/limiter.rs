//! Sign-in protection (SPEC §7): failed sign-in attempts limited per username
//! and per client address over a sliding window, in bounded process memory, on
//! the engine's clock; and `HashPool`, the bounded pool every argon2 hash and
//! verification runs on, which refuses work when full instead of queueing it
//! without end.
//!
//! The limiter's state is per process: with several nodes behind a load
//! balancer, each node counts the attempts it sees (see the README).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::{IntegrationId, Timestamp};

/// At most `max` events per `window` (a sliding window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Events allowed within one window.
    pub max: u32,
    /// The window.
    pub window: Duration,
}

impl RateLimit {
    /// `max` events per `window`.
    pub const fn new(max: u32, window: Duration) -> Self {
        Self { max, window }
    }

    /// Parses `N/DURATION` (e.g. `5/15m`, `60/1h`); the error names `setting`.
    pub fn parse(setting: &str, spec: &str) -> Result<Self> {
        let bad = || {
            Error::config(
                setting,
                "expected COUNT/DURATION with a count of at least 1, e.g. 5/15m",
            )
        };
        let (count, window) = spec.trim().split_once('/').ok_or_else(bad)?;
        let max = count
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(bad)?;
        let window = crate::sla::parse_duration(window)
            .filter(|d| !d.is_zero() && *d <= MAX_WINDOW)
            .ok_or_else(|| {
                Error::config(
                    setting,
                    "expected COUNT/DURATION with a count of at least 1 and a duration of at most 100 years, e.g. 5/15m",
                )
            })?;
        Ok(Self { max, window })
    }
}

/// Longest window of a [`RateLimit`] read from a setting: 100 years (longer
/// ones would overflow instant arithmetic and mean "forever" anyway).
pub const MAX_WINDOW: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Limits on failed sign-in attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInLimits {
    /// Failed attempts allowed per username (default 5 in 15 minutes). A
    /// successful sign-in clears the username's failures.
    pub per_username: RateLimit,
    /// Failed attempts allowed per client address, whatever the usernames
    /// (default 20 in 15 minutes; IPv6 addresses count per /64). Successful
    /// sign-ins neither count nor clear it.
    pub per_address: RateLimit,
    /// Most usernames, and most addresses, tracked at once (default 20,000
    /// each: at most a few hundred bytes an entry, so under 10 MB in all).
    /// When full, entries whose window has passed go first, then the least
    /// recently active. Every tracked failure cost one argon2 verification on
    /// the bounded pool, so filling the table takes minutes of the pool's
    /// whole capacity.
    pub max_tracked: usize,
}

impl Default for SignInLimits {
    fn default() -> Self {
        Self {
            per_username: RateLimit::new(5, Duration::from_secs(15 * 60)),
            per_address: RateLimit::new(20, Duration::from_secs(15 * 60)),
            max_tracked: 20_000,
        }
    }
}

/// The bounded pool that hashes and verifies passwords.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashPoolConfig {
    /// Hashes computed at once, each on its own thread (argon2id with the
    /// default parameters uses 19 MiB while it runs). Default: the number of
    /// CPUs, at most 4.
    pub workers: usize,
    /// Hashes waiting for a worker; one more is refused as
    /// [`Error::Unavailable`] (default 64).
    pub queue: usize,
    /// `Retry-After` of a refusal (default 1 s).
    pub retry_after: Duration,
}

impl Default for HashPoolConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            workers: cpus.clamp(1, 4),
            queue: 64,
            retry_after: Duration::from_secs(1),
        }
    }
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64 (one host
/// usually holds a whole /64), an IPv4-mapped IPv6 address as its IPv4.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The key a username is counted under: trimmed, lower-cased, at most 64
/// characters (so a long or case-varied name is no way around the limit, and
/// no way to use memory).
pub fn username_key(username: &str) -> String {
    username
        .trim()
        .chars()
        .take(64)
        .flat_map(char::to_lowercase)
        .collect()
}

#[derive(Debug, Default)]
struct Slot {
    /// Instants (ms) of the failures still inside the window, oldest first.
    failures: Vec<i64>,
    /// Attempts admitted and not finished yet: they count as failures until
    /// they finish, so concurrent attempts cannot pass the limit together.
    pending: u32,
    /// The last failure or admission (ms), for eviction.
    last: i64,
}

fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

fn window_ms(limit: &RateLimit) -> i64 {
    crate::model::millis(limit.window)
}

impl Slot {
    fn expire(&mut self, now: i64, window: i64) {
        let keep_from = self
            .failures
            .iter()
            .position(|t| now.saturating_sub(*t) < window)
            .unwrap_or(self.failures.len());
        self.failures.drain(..keep_from);
    }
}

/// Failures per key in a sliding window; at most `max_keys` keys.
#[derive(Debug)]
struct Counter<K> {
    limit: RateLimit,
    max_keys: usize,
    slots: Mutex<HashMap<K, Slot>>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    fn new(limit: RateLimit, max_keys: usize) -> Self {
        Self {
            limit,
            max_keys: max_keys.max(16),
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits one attempt for `key` (counted as pending), or says how long to
    /// wait.
    fn admit(&self, key: &K, now: i64) -> std::result::Result<(), Duration> {
        let window = window_ms(&self.limit);
        let max = self.limit.max as usize;
        let mut slots = self.lock();
        if !slots.contains_key(key) && slots.len() >= self.max_keys {
            Self::make_room(&mut slots, self.max_keys, now, window);
        }
        let slot = slots.entry(key.clone()).or_default();
        slot.expire(now, window);
        let used = slot.failures.len() + slot.pending as usize;
        if used >= max {
            // The attempt may come when enough failures have left the window;
            // if pending attempts are what fills it, they finish in moments.
            let must_expire = used + 1 - max;
            let wait = match slot.failures.get(must_expire.wrapping_sub(1)) {
                Some(t) if must_expire <= slot.failures.len() => Duration::from_millis(
                    u64::try_from(t.saturating_add(window).saturating_sub(now)).unwrap_or(0),
                ),
                _ => Duration::from_secs(1),
            };
            return Err(wait.max(Duration::from_secs(1)));
        }
        slot.pending += 1;
        slot.last = now;
        Ok(())
    }

    /// Ends an admitted attempt; a failure is remembered, a success clears the
    /// key's failures when `clear_on_success`.
    fn finish(&self, key: &K, now: i64, outcome: Outcome, clear_on_success: bool) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(key) else {
            return;
        };
        slot.pending = slot.pending.saturating_sub(1);
        match outcome {
            Outcome::Failed => {
                slot.failures.push(now);
                slot.last = now;
                let window = window_ms(&self.limit);
                slot.expire(now, window);
                // Never more than the limit is needed to decide.
                let max = self.limit.max as usize;
                if slot.failures.len() > max {
                    let extra = slot.failures.len() - max;
                    slot.failures.drain(..extra);
                }
            }
            Outcome::Succeeded if clear_on_success => slot.failures.clear(),
            Outcome::Succeeded | Outcome::Abandoned => {}
        }
        if slot.pending == 0 && slot.failures.is_empty() {
            slots.remove(key);
        }
    }

    /// Drops the entries whose window has passed, then, while more than 90% of
    /// `max_keys` are still there, the least recently active idle ones. Each
    /// call frees at least a tenth of the table, so its cost is amortised.
    fn make_room(slots: &mut HashMap<K, Slot>, max_keys: usize, now: i64, window: i64) {
        slots.retain(|_, s| {
            s.pending > 0
                || s.failures
                    .last()
                    .is_some_and(|t| now.saturating_sub(*t) < window)
        });
        let target = max_keys - max_keys / 10;
        if slots.len() <= target {
            return;
        }
        let mut idle: Vec<(i64, K)> = slots
            .iter()
            .filter(|(_, s)| s.pending == 0)
            .map(|(k, s)| (s.last, k.clone()))
            .collect();
        let excess = (slots.len() - target).min(idle.len());
        if excess == 0 {
            return;
        }
        idle.select_nth_unstable_by_key(excess - 1, |(last, _)| *last);
        for (_, k) in idle.into_iter().take(excess) {
            slots.remove(&k);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Failed,
    Succeeded,
    Abandoned,
}

/// The failed-attempt counters of one engine.
#[derive(Debug)]
pub(crate) struct SignInGuard {
    usernames: Counter<String>,
    addresses: Counter<IpAddr>,
}

impl SignInGuard {
    pub(crate) fn new(limits: &SignInLimits) -> Self {
        Self {
            usernames: Counter::new(limits.per_username, limits.max_tracked),
            addresses: Counter::new(limits.per_address, limits.max_tracked),
        }
    }

    /// Admits one sign-in attempt, or refuses it with [`Error::RateLimited`]
    /// (nothing counted). The attempt counts as a failure until it is
    /// finished; dropping it unfinished (a cancelled request, a full hashing
    /// pool) counts nothing.
    pub(crate) fn admit(
        self: &Arc<Self>,
        username: &str,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Attempt> {
        let user = username_key(username);
        let addr = client.map(address_key);
        let now = ms(now);
        let refused = |wait: Duration| {
            Error::rate_limited("too many failed sign-in attempts; try again later", wait)
        };
        self.usernames.admit(&user, now).map_err(refused)?;
        if let Some(a) = &addr
            && let Err(wait) = self.addresses.admit(a, now)
        {
            self.usernames.finish(&user, now, Outcome::Abandoned, true);
            return Err(refused(wait));
        }
        Ok(Attempt {
            guard: Arc::clone(self),
            user,
            addr,
            done: false,
        })
    }

    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        (self.usernames.len(), self.addresses.len())
    }
}

/// One admitted sign-in attempt.
#[derive(Debug)]
pub(crate) struct Attempt {
    guard: Arc<SignInGuard>,
    user: String,
    addr: Option<IpAddr>,
    done: bool,
}

impl Attempt {
    fn finish(&mut self, now: Timestamp, outcome: Outcome) {
        if self.done {
            return;
        }
        self.done = true;
        let now = ms(now);
        self.guard.usernames.finish(&self.user, now, outcome, true);
        if let Some(a) = &self.addr {
            self.guard.addresses.finish(a, now, outcome, false);
        }
    }

    /// The password was wrong (or the user unknown).
    pub(crate) fn failed(mut self, now: Timestamp) {
        self.finish(now, Outcome::Failed);
    }

    /// The sign-in succeeded: the username's failures are forgotten.
    pub(crate) fn succeeded(mut self, now: Timestamp) {
        self.finish(now, Outcome::Succeeded);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            // The instant does not matter: nothing is recorded.
            self.guard
                .usernames
                .finish(&self.user, 0, Outcome::Abandoned, true);
            if let Some(a) = &self.addr {
                self.guard.addresses.finish(a, 0, Outcome::Abandoned, false);
            }
        }
    }
}

/// The events each integration key posted in a sliding window (SPEC §4's
/// per-key ingest limit), in the same bounded memory as the sign-in counters:
/// at most `max_keys` keys, the least recently active forgotten first.
#[derive(Debug)]
pub(crate) struct EventLimiter {
    counter: Counter<IntegrationId>,
}

impl EventLimiter {
    /// A limiter of `limit` per key, tracking at most `max_keys` keys.
    pub(crate) fn new(limit: RateLimit, max_keys: usize) -> Self {
        Self {
            counter: Counter::new(limit, max_keys),
        }
    }

    /// Counts one event of `key` at `now`, or refuses it (counting nothing)
    /// with how long until one more fits in the window.
    pub(crate) fn hit(
        &self,
        key: &IntegrationId,
        now: Timestamp,
    ) -> std::result::Result<(), Duration> {
        let now = ms(now);
        self.counter.admit(key, now)?;
        // Every admitted event counts, whatever becomes of it.
        self.counter.finish(key, now, Outcome::Failed, false);
        Ok(())
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads that hash passwords, with a bounded waiting line.
/// Work beyond `workers + queue` at once is refused at once
/// ([`Error::Unavailable`]), so a flood of sign-ins costs a bounded amount of
/// memory and threads. The threads stop when the pool is dropped.
#[derive(Debug)]
pub(crate) struct HashPool {
    admission: Arc<tokio::sync::Semaphore>,
    jobs: std::sync::mpsc::Sender<Job>,
    retry_after: Duration,
}

impl HashPool {
    pub(crate) fn new(config: &HashPoolConfig) -> Result<Self> {
        if config.workers == 0 {
            return Err(Error::config("hash pool workers", "expected at least 1"));
        }
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..config.workers {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("imas-hash-{n}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => {
                                // A panic in one hash must not take the worker with it.
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| Error::config("hash pool workers", e.to_string()))?;
        }
        Ok(Self {
            admission: Arc::new(tokio::sync::Semaphore::new(
                config.workers.saturating_add(config.queue),
            )),
            jobs: tx,
            retry_after: config.retry_after,
        })
    }

    /// Runs `work` on a worker and waits for its answer, or refuses at once when
    /// the pool and its waiting line are full. If the caller stops waiting
    /// before a worker takes the job, the job is skipped.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let permit = Arc::clone(&self.admission)
            .try_acquire_owned()
            .map_err(|_| {
                Error::unavailable(
                    "too many sign-ins in progress; try again shortly",
                    self.retry_after,
                )
            })?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                return;
            }
            let answer = work();
            // The place is free before the caller hears back: a caller that
            // has its answer holds no place in the pool.
            drop(permit);
            let _ = tx.send(answer);
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::backend("hash pool", "the hashing threads stopped"))?;
        rx.await
            .map_err(|_| Error::backend("hash pool", "a hashing thread stopped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIN: Duration = Duration::from_secs(900);

    #[test]
    fn the_limit_counts_pending_attempts_and_forgets_abandoned_ones() {
        let c = Counter::<String>::new(RateLimit::new(2, WIN), 100);
        let k = "a".to_string();
        assert!(c.admit(&k, 0).is_ok());
        assert!(c.admit(&k, 0).is_ok());
        assert_eq!(c.admit(&k, 0), Err(Duration::from_secs(1)));
        c.finish(&k, 10, Outcome::Abandoned, true);
        c.finish(&k, 10, Outcome::Failed, true);
        assert!(c.admit(&k, 20).is_ok());
        c.finish(&k, 20, Outcome::Failed, true);
        // Two failures at 10 and 20 ms: the next attempt once the first leaves.
        assert_eq!(c.admit(&k, 30), Err(Duration::from_millis(900_000 - 20)));
        assert!(c.admit(&k, 900_010).is_ok());
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_the_recent_entries() {
        let c = Counter::<String>::new(RateLimit::new(5, WIN), 100);
        for n in 0..10_000i64 {
            let k = format!("user{n}");
            c.admit(&k, n).expect("admit");
            c.finish(&k, n, Outcome::Failed, true);
            assert!(c.len() <= 100);
        }
        // The most recent key is still counted.
        let k = "user9999".to_string();
        for _ in 0..4 {
            c.admit(&k, 10_000).expect("admit");
            c.finish(&k, 10_000, Outcome::Failed, true);
        }
        assert!(c.admit(&k, 10_000).is_err());
    }

    #[test]
    fn events_count_per_key_in_a_sliding_window() {
        let l = EventLimiter::new(RateLimit::new(3, Duration::from_secs(60)), 100);
        let (a, b) = (IntegrationId::new(), IntegrationId::new());
        let t = crate::model::from_millis;
        for n in 0..3 {
            l.hit(&a, t(n * 1000)).expect("within the limit");
        }
        assert_eq!(
            l.hit(&a, t(5_000)),
            Err(Duration::from_millis(55_000)),
            "the fourth waits until the first leaves the window"
        );
        l.hit(&b, t(5_000)).expect("another key has its own window");
        l.hit(&a, t(60_000)).expect("the first left the window");
        assert!(
            l.hit(&a, t(60_001)).is_err(),
            "a refusal counted nothing, but the window is full"
        );
    }

    #[test]
    fn limits_parse_from_text() {
        assert_eq!(
            RateLimit::parse("X", " 5/15m ").expect("parse"),
            RateLimit::new(5, WIN)
        );
        assert_eq!(
            RateLimit::parse("X", "60/1h").expect("parse"),
            RateLimit::new(60, Duration::from_secs(3600))
        );
        for bad in ["", "5", "0/1m", "5/0s", "x/1m", "5/soon", "-1/1m"] {
            let e = RateLimit::parse("IMAS_X", bad).expect_err(bad);
            assert!(e.to_string().contains("IMAS_X"), "{e}");
        }
    }

    #[test]
    fn keys_are_normalised() {
        assert_eq!(username_key("  Alice "), "alice");
        assert_eq!(username_key(&"x".repeat(1000)).len(), 64);
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        let m: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert_eq!(address_key(m), "10.1.2.3".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn dropped_attempts_release_their_reservation() {
        let g = Arc::new(SignInGuard::new(&SignInLimits::default()));
        let now = crate::model::from_millis(0);
        for _ in 0..100 {
            let a = g.admit("bob", Some("10.0.0.1".parse().expect("ip")), now);
            drop(a.expect("admitted"));
        }
        assert_eq!(g.tracked(), (0, 0));
    }
}
