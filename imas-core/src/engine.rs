//! The engine: every use case of IMAS (SPEC §1), written once against the ports.
//! Each use case checks the caller's permission ([`crate::rbac`]), validates its
//! input, and commits the domain change with its audit entries and notification
//! intents as one atomic [`Change`]. The SLA sweep, the outbox relay and the
//! notification worker are steps here too; the background loops that drive them
//! only call these steps.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tracing::{debug, warn};

use crate::auth::{self, DEFAULT_TOKEN_TTL, JwtKeys};
use crate::cache::ReadCache;
use crate::error::{Error, Result};
use crate::escalation::{self, EscalationPolicy, Step, Target};
use crate::limiter::{HashPool, HashPoolConfig, RateLimit, SignInGuard, SignInLimits};
use crate::memory::MemoryQueue;
use crate::model::{
    Actor, AuditAction, AuditEntry, AuditFilter, Incident, IncidentFilter, IncidentId,
    IncidentType, Notification, NotificationId, NotificationIntent, NotificationType, Page,
    PageRequest, Priority, Role, Status, Timestamp, User, UserId,
};
use crate::ports::{
    Change, Channel, Clock, DeadLetter, FailOutcome, IncidentWrite, Job, NewJob, Queue, Store,
    SystemClock, UserWrite,
};
use crate::rbac::{self, Permission};
use crate::sla::{self, SlaPolicy};

mod downloads;
mod health;

pub use downloads::{Download, DownloadError, ReportRequest};
pub use health::Health;

/// The authenticated caller of a use case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub id: UserId,
    /// The user's current role.
    pub role: Role,
}

/// Tunables of the engine's background steps.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Resolution and response targets.
    pub sla: SlaPolicy,
    /// Automatic escalation levels.
    pub escalation: EscalationPolicy,
    /// How long an SLA sweep holds a claimed incident before another node may take
    /// it over.
    pub claim_lease: Duration,
    /// Incidents claimed per sweep step.
    pub sweep_batch: u32,
    /// How long after publishing an outbox entry the relay publishes it again when
    /// no worker has confirmed its delivery.
    pub outbox_lease: Duration,
    /// Outbox entries (and jobs) handled per relay (worker) step.
    pub notify_batch: u32,
    /// How long a reserved job stays invisible to other workers unless its
    /// worker extends it: a worker extends its jobs every third of this while
    /// it delivers them, so only a worker that crashed or stalled this long
    /// loses its jobs to another.
    pub job_visibility: Duration,
    /// Live notification streams one user may hold open at once; one more is
    /// refused ([`Error::RateLimited`]) until one of them ends.
    pub max_streams_per_user: usize,
    /// Failed sign-in attempts allowed per username and per client address.
    pub sign_in: SignInLimits,
    /// The bounded pool that hashes and verifies passwords.
    pub hash_pool: HashPoolConfig,
    /// Incidents a caller with role `user` may report per window (default 60
    /// an hour; `None`: no limit). Admins and engineers are not limited.
    pub report_limit: Option<RateLimit>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            sla: SlaPolicy::default(),
            escalation: EscalationPolicy::default(),
            claim_lease: Duration::from_secs(30),
            sweep_batch: 100,
            outbox_lease: Duration::from_secs(30),
            notify_batch: 100,
            job_visibility: Duration::from_secs(30),
            max_streams_per_user: DEFAULT_MAX_STREAMS_PER_USER,
            sign_in: SignInLimits::default(),
            hash_pool: HashPoolConfig::default(),
            report_limit: Some(RateLimit::new(60, Duration::from_secs(3600))),
        }
    }
}

/// Default of [`EngineConfig::max_streams_per_user`].
pub const DEFAULT_MAX_STREAMS_PER_USER: usize = 3;

/// How long a caller refused a live stream is told to wait before trying again.
const STREAM_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Builds an [`Engine`]. Only the store is required: the clock defaults to the
/// system clock, the queue to an in-process [`MemoryQueue`], and the JWT keys to a
/// random development secret (tokens die with the process; say so in logs).
#[derive(Debug)]
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    queue: Option<Arc<dyn Queue>>,
    clock: Arc<dyn Clock>,
    keys: Option<JwtKeys>,
    config: EngineConfig,
    channels: Vec<Arc<dyn Channel>>,
}

impl EngineBuilder {
    /// The notification queue.
    pub fn queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// JWT signing keys.
    pub fn jwt_keys(mut self, keys: JwtKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The whole configuration.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// The SLA policy.
    pub fn sla_policy(mut self, sla: SlaPolicy) -> Self {
        self.config.sla = sla;
        self
    }

    /// The escalation policy.
    pub fn escalation_policy(mut self, escalation: EscalationPolicy) -> Self {
        self.config.escalation = escalation;
        self
    }

    /// Adds a delivery channel (the in-app store is always one).
    pub fn channel(mut self, channel: Arc<dyn Channel>) -> Self {
        self.channels.push(channel);
        self
    }

    /// The engine.
    pub fn build(self) -> Result<Engine> {
        let keys = match self.keys {
            Some(k) => k,
            None => {
                warn!(
                    "no JWT secret configured: using a random one; tokens will not survive a restart"
                );
                JwtKeys::random(DEFAULT_TOKEN_TTL)?
            }
        };
        if self.config.sweep_batch == 0 || self.config.notify_batch == 0 {
            return Err(Error::config("batch size", "expected at least 1"));
        }
        if self.config.report_limit.is_some_and(|l| l.max == 0) {
            return Err(Error::config("report limit", "expected at least 1"));
        }
        let hash_pool = HashPool::new(&self.config.hash_pool)?;
        let sign_in = Arc::new(SignInGuard::new(&self.config.sign_in));
        let queue = self
            .queue
            .unwrap_or_else(|| Arc::new(MemoryQueue::new(self.clock.clone(), Default::default())));
        Ok(Engine {
            inner: Arc::new(Inner {
                hash_pool,
                sign_in,
                role_change: tokio::sync::Mutex::new(()),
                report_locks: (0..REPORT_LOCKS)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                store: self.store,
                queue,
                clock: self.clock,
                keys,
                config: self.config,
                counters: crate::metrics::Counters::with_channels(
                    self.channels.iter().map(|c| c.name()),
                ),
                channels: self.channels,
                live: tokio::sync::broadcast::channel(LIVE_CAPACITY).0,
                rearm: tokio::sync::Notify::new(),
                armed_until: AtomicI64::new(i64::MIN),
                cache: ReadCache::new(),
                streams: Arc::default(),
            }),
        })
    }
}

/// The IMAS engine. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    keys: JwtKeys,
    config: EngineConfig,
    channels: Vec<Arc<dyn Channel>>,
    /// What this engine counted (breaches, deliveries, retention), for metrics.
    counters: crate::metrics::Counters,
    /// New in-app notifications delivered by this process, for live streams.
    live: tokio::sync::broadcast::Sender<Notification>,
    /// Wakes the SLA monitor when a change here may have moved a due time
    /// earlier than the one it sleeps towards.
    rearm: tokio::sync::Notify,
    /// The instant (ms since the epoch) the SLA monitor sleeps towards;
    /// `i64::MIN` while it is awake (sweeping, or looking up the next due time),
    /// so that every change made meanwhile wakes it again.
    armed_until: AtomicI64,
    /// Principals and list pages, valid while the store's generation holds.
    cache: ReadCache,
    /// Live streams open per user.
    streams: Arc<std::sync::Mutex<std::collections::HashMap<UserId, usize>>>,
    /// Where every password is hashed and verified.
    hash_pool: HashPool,
    /// Failed sign-in attempts per username and per address.
    sign_in: Arc<SignInGuard>,
    /// Serialises role changes in this process, so that two admins demoting
    /// each other at once cannot leave no admin.
    role_change: tokio::sync::Mutex<()>,
    /// Serialise one `user`'s reports in this process from the limit check to
    /// the commit, so that reports sent at once cannot all pass the count
    /// together (striped by user: bounded, whatever the number of users).
    report_locks: Box<[tokio::sync::Mutex<()>]>,
}

/// Stripes of [`Inner::report_locks`].
const REPORT_LOCKS: usize = 64;

/// One open live stream of a user: taken from [`Inner::streams`], given back
/// when the stream is dropped (it ended, or its client went away).
#[derive(Debug)]
struct StreamSlot {
    streams: Arc<std::sync::Mutex<std::collections::HashMap<UserId, usize>>>,
    user: UserId,
}

impl StreamSlot {
    fn take(
        streams: &Arc<std::sync::Mutex<std::collections::HashMap<UserId, usize>>>,
        user: UserId,
        max: usize,
    ) -> Result<Self> {
        let mut open = streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(user).or_insert(0);
        if *n >= max {
            return Err(Error::rate_limited(
                format!("at most {max} live notification streams per user are open at once"),
                STREAM_RETRY_AFTER,
            ));
        }
        *n += 1;
        Ok(Self {
            streams: streams.clone(),
            user,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// How many undelivered live notifications a slow stream may fall behind by
/// before it skips ahead (the list endpoint still has them all).
const LIVE_CAPACITY: usize = 1024;

/// Input of [`Engine::register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Display name, 1..=100 characters.
    pub name: String,
    /// 3..=50 of `A-Z a-z 0-9 . _ -`.
    pub username: String,
    /// An email address (stored lower-cased).
    pub email: String,
    /// At least 8 characters.
    pub password: String,
}

/// Input of [`Engine::create_incident`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewIncident {
    /// 1..=200 characters.
    pub title: String,
    /// At most 10,000 characters.
    pub description: Option<String>,
    /// Default `task`.
    pub kind: Option<IncidentType>,
    /// Default `medium`.
    pub priority: Option<Priority>,
    /// An existing user.
    pub assigned_to: Option<UserId>,
}

/// Input of [`Engine::update_incident`]: the fields to change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentPatch {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New kind.
    pub kind: Option<IncidentType>,
    /// New priority (re-computes the SLA).
    pub priority: Option<Priority>,
    /// New status (must be an allowed transition).
    pub status: Option<Status>,
    /// `Some(None)` unassigns.
    pub assigned_to: Option<Option<UserId>>,
}

/// Answer of [`Engine::list_violations`].
#[derive(Debug, Clone, PartialEq)]
pub struct Violations {
    /// Open incidents past their deadline (breached or about to be recorded).
    pub total: u64,
    /// Of those, breaches already recorded and notified.
    pub notified: u64,
    /// Of those, past the deadline but not yet recorded by the monitor.
    pub skipped: u64,
    /// One page of the violating incidents.
    pub page: Page<Incident>,
}

/// What one SLA sweep step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Incidents claimed.
    pub claimed: usize,
    /// Missed response targets recorded.
    pub response_breaches: usize,
    /// At-risk warnings recorded.
    pub at_risk: usize,
    /// Breaches recorded.
    pub breaches: usize,
    /// Escalation levels reached automatically.
    pub escalations: usize,
    /// Claims lost to a concurrent change (the incident is handled by its next claim).
    pub conflicts: usize,
}

/// What one notification worker step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Jobs reserved.
    pub jobs: usize,
    /// New in-app notifications.
    pub delivered: usize,
    /// Jobs whose notification already existed (redeliveries).
    pub duplicates: usize,
    /// Jobs that failed (retried or dead-lettered by the queue).
    pub failed: usize,
    /// Of those, jobs that went to the dead letters (a failure retrying cannot
    /// fix, or the last attempt); their outbox entries are completed.
    pub dead_lettered: usize,
}

const MAX_NAME: usize = 100;
const MAX_TITLE: usize = 200;
const MAX_DESCRIPTION: usize = 10_000;
const MAX_REASON: usize = 1_000;
const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1_024;

fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    // No store keeps a NUL character in text (PostgreSQL refuses it).
    if value.contains('\0') {
        return Err(Error::validation(
            field,
            "expected text without NUL characters",
        ));
    }
    let n = value.chars().count();
    if n < min || n > max {
        let expected = if min == 0 {
            format!("at most {max} characters")
        } else {
            format!("{min} to {max} characters")
        };
        return Err(Error::validation(
            field,
            format!("expected {expected}, got {n}"),
        ));
    }
    Ok(())
}

fn validate_title(title: &str) -> Result<()> {
    check_len("title", title, 1, MAX_TITLE)?;
    if title.trim().is_empty() {
        return Err(Error::validation("title", "expected some non-blank text"));
    }
    Ok(())
}

fn validate_new_user(u: &NewUser) -> Result<NewUser> {
    let name = u.name.trim().to_string();
    check_len("name", &name, 1, MAX_NAME)?;
    let username = u.username.trim().to_string();
    check_len("username", &username, 3, 50)?;
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(Error::validation(
            "username",
            "expected only letters, digits, '.', '_' and '-'",
        ));
    }
    let email = validate_email(&u.email)?;
    validate_password(&u.password)?;
    Ok(NewUser {
        name,
        username,
        email,
        password: u.password.clone(),
    })
}

/// An email address as stored (trimmed, lower-cased), if lettre's parser
/// accepts it (one address of the form `local@domain`: no list, no display
/// name, so that every stored address can be mailed) and its domain has a dot.
pub fn validate_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    check_len("email", &email, 3, 254)?;
    let expected = "expected one email address such as ada@example.com";
    let address = email
        .parse::<lettre::Address>()
        .map_err(|e| Error::validation("email", format!("{expected} ({e})")))?;
    // A domain of one label (`a@b`) is no address mail can reach from outside;
    // an address literal (`a@[192.0.2.1]`) is accepted as lettre parses it.
    let domain = address.domain();
    if !domain.starts_with('[') && !domain.trim_end_matches('.').contains('.') {
        return Err(Error::validation(
            "email",
            format!("{expected} (the domain has no dot)"),
        ));
    }
    Ok(email)
}

/// A password's length, and that it is not among the commonly used passwords
/// (the table of the `passwords` crate, about 100,000 entries; compared as
/// typed and lower-cased).
pub fn validate_password(password: &str) -> Result<()> {
    check_len("password", password, MIN_PASSWORD, MAX_PASSWORD)?;
    let lower = password.to_lowercase();
    if passwords::analyzer::is_common_password(password)
        || passwords::analyzer::is_common_password(&lower)
        || passwords::analyzer::is_common_password(lower.trim())
    {
        return Err(Error::validation(
            "password",
            "this password is among the most commonly used ones; choose another",
        ));
    }
    Ok(())
}

/// A fixed hash verified when the username is unknown, so that a wrong username
/// and a wrong password take the same time. Computed on a hashing thread the
/// first time it is needed.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| auth::hash_password("imas-timing-equaliser").unwrap_or_default())
}

fn from_where(client: Option<IpAddr>) -> String {
    match client {
        Some(ip) => format!("from {ip}"),
        None => "from an unknown address".to_string(),
    }
}

fn quoted(title: &str) -> String {
    format!("\"{title}\"")
}

impl Engine {
    /// Starts building an engine on a store.
    pub fn builder(store: Arc<dyn Store>) -> EngineBuilder {
        EngineBuilder {
            store,
            queue: None,
            clock: Arc::new(SystemClock),
            keys: None,
            config: EngineConfig::default(),
            channels: Vec::new(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.inner.queue
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The current instant on the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn sla(&self) -> &SlaPolicy {
        &self.inner.config.sla
    }

    fn escalation(&self) -> &EscalationPolicy {
        &self.inner.config.escalation
    }

    async fn commit(&self, change: Change) -> Result<()> {
        let due = match &change.incident {
            Some(IncidentWrite::Insert(i) | IncidentWrite::Update { incident: i, .. }) => {
                i.next_due_at
            }
            _ => None,
        };
        // The commit and the monitor's wake-up run detached: a request dropped
        // meanwhile (its client went away) cannot leave a committed change the
        // monitor does not hear of until its next poll.
        let inner = Arc::clone(&self.inner);
        crate::ports::run_detached("engine", async move {
            inner.store.commit(change).await?;
            // Wake the monitor only when this due time comes before the instant
            // it sleeps towards: it finds later ones when it wakes anyway.
            if due.is_some_and(|at| at.timestamp_millis() < inner.armed_until.load(SeqCst)) {
                inner.rearm.notify_one();
            }
            Ok(())
        })
        .await
    }

    async fn load_incident(&self, id: IncidentId) -> Result<Incident> {
        self.inner
            .store
            .get_incident(id)
            .await?
            .ok_or(Error::NotFound { entity: "incident" })
    }

    // ----- users and authentication -------------------------------------------------

    /// Registers a new account, always with role `user`, and signs it in.
    pub async fn register(&self, input: NewUser) -> Result<(User, String)> {
        let input = validate_new_user(&input)?;
        self.insert_user(input, Role::User, None).await
    }

    async fn insert_user(
        &self,
        input: NewUser,
        role: Role,
        by: Option<Actor>,
    ) -> Result<(User, String)> {
        let now = self.now();
        let user = User {
            id: UserId::new(),
            name: input.name,
            username: input.username,
            email: input.email,
            password_hash: self.hash_password(input.password).await?,
            role,
            created_at: now,
        };
        let actor = by.unwrap_or(Actor::User(user.id));
        let audit = AuditEntry::new(
            AuditAction::UserRegistered,
            actor,
            Some(user.id.to_string()),
            format!("user {} registered with role {}", user.username, user.role),
            now,
        );
        self.commit(Change {
            user: Some(UserWrite::Insert(user.clone())),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        let token = self.inner.keys.issue(user.id, user.role, now)?;
        Ok((user, token))
    }

    /// Creates the bootstrap admin unless a user with that username exists.
    /// Returns the new admin, or `None` when the username was taken.
    pub async fn ensure_admin(
        &self,
        username: &str,
        password: &str,
        email: &str,
    ) -> Result<Option<User>> {
        if self
            .inner
            .store
            .user_by_username(username.trim())
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let input = validate_new_user(&NewUser {
            name: username.into(),
            username: username.into(),
            email: email.into(),
            password: password.into(),
        })?;
        match self
            .insert_user(input, Role::Admin, Some(Actor::System))
            .await
        {
            Ok((user, _)) => Ok(Some(user)),
            // Another node bootstrapped it at the same moment.
            Err(Error::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Hashes a password on the bounded pool.
    async fn hash_password(&self, password: String) -> Result<String> {
        self.inner
            .hash_pool
            .run(move || auth::hash_password(&password))
            .await?
    }

    /// Signs in from an unknown client address; see [`Engine::login_from`].
    pub async fn login(&self, username: &str, password: &str) -> Result<String> {
        self.login_from(username, password, None).await
    }

    /// Signs in a client at `client` (when known). A wrong password and an
    /// unknown user get the same error, after the same work; both are audited
    /// as `LOGIN_FAILED`, a success as `LOGIN`, each with the client address in
    /// its description. After too many failures for the username or the
    /// address ([`EngineConfig::sign_in`]) an attempt is refused at once with
    /// [`Error::RateLimited`], without checking the password; when the hashing
    /// pool is full, with [`Error::Unavailable`]. Neither refusal is audited or
    /// counted.
    pub async fn login_from(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<String> {
        let attempt = self.inner.sign_in.admit(username, client, self.now())?;
        // No username holds a NUL (registration refuses it), and no store can
        // look one up or record it: such a name is unknown, recorded without it.
        let user = if username.contains('\0') {
            None
        } else {
            self.inner.store.user_by_username(username).await?
        };
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let password = password.to_string();
        let ok = self
            .inner
            .hash_pool
            .run(move || match hash {
                Some(h) => auth::verify_password(&password, &h),
                None => {
                    let _ = auth::verify_password(&password, dummy_hash());
                    false
                }
            })
            .await?;
        let now = self.now();
        match user {
            Some(u) if ok => {
                let audit = AuditEntry::new(
                    AuditAction::Login,
                    Actor::User(u.id),
                    Some(u.id.to_string()),
                    format!("{} signed in {}", u.username, from_where(client)),
                    now,
                );
                self.commit(Change {
                    audit: vec![audit],
                    ..Change::default()
                })
                .await?;
                // Only a sign-in that completed forgets the failures before it
                // (if the commit failed, the attempt is dropped as abandoned).
                attempt.succeeded(now);
                self.inner.keys.issue(u.id, u.role, now)
            }
            _ => {
                attempt.failed(now);
                let target: String = username
                    .chars()
                    .take(100)
                    .map(|c| if c == '\0' { '\u{fffd}' } else { c })
                    .collect();
                let audit = AuditEntry::new(
                    AuditAction::LoginFailed,
                    Actor::System,
                    Some(target),
                    format!("failed sign-in {}", from_where(client)),
                    now,
                );
                self.commit(Change {
                    audit: vec![audit],
                    ..Change::default()
                })
                .await?;
                Err(Error::unauthorized("invalid username or password"))
            }
        }
    }

    /// Verifies a bearer token and loads the caller's current role (a role change
    /// or a deleted account takes effect at once, not when the token expires).
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let claims = self.inner.keys.verify(token, self.now())?;
        self.principal_of(&claims).await
    }

    /// The current principal of verified claims.
    async fn principal_of(&self, claims: &auth::Claims) -> Result<Principal> {
        let id = claims.user_id()?;
        // The role is read from the store (or from the cache, which holds it only
        // until the next user write), so a role change applies to live tokens.
        let at = self.inner.store.generation();
        if let Some(p) = self.inner.cache.principal(id, at) {
            return Ok(p);
        }
        let user = self
            .inner
            .store
            .get_user(id)
            .await?
            .ok_or_else(|| Error::unauthorized("unknown user"))?;
        let p = Principal {
            id: user.id,
            role: user.role,
        };
        self.inner.cache.put_principal(p, at);
        Ok(p)
    }

    /// A user by id (admins, or the user themself).
    pub async fn get_user(&self, who: &Principal, id: UserId) -> Result<User> {
        if who.id != id && who.role != Role::Admin {
            return Err(Error::NotFound { entity: "user" });
        }
        self.inner
            .store
            .get_user(id)
            .await?
            .ok_or(Error::NotFound { entity: "user" })
    }

    /// Changes a user's role (admin).
    pub async fn change_role(&self, who: &Principal, id: UserId, role: Role) -> Result<User> {
        rbac::require(who.role, Permission::ChangeRole)?;
        let _serialised = self.inner.role_change.lock().await;
        let mut user = self
            .inner
            .store
            .get_user(id)
            .await?
            .ok_or(Error::NotFound { entity: "user" })?;
        if user.role == role {
            return Ok(user);
        }
        if user.role == Role::Admin
            && self.inner.store.users_with_role(Role::Admin).await?.len() <= 1
        {
            return Err(Error::conflict(format!(
                "{} is the last admin and cannot be demoted; make another admin first",
                user.username
            )));
        }
        let audit = AuditEntry::new(
            AuditAction::RoleChanged,
            Actor::User(who.id),
            Some(id.to_string()),
            format!(
                "role of {} changed from {} to {}",
                user.username, user.role, role
            ),
            self.now(),
        );
        self.commit(Change {
            user: Some(UserWrite::SetRole { id, role }),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        user.role = role;
        Ok(user)
    }

    // ----- incidents ----------------------------------------------------------------

    async fn require_user(&self, field: &str, id: UserId) -> Result<()> {
        match self.inner.store.get_user(id).await? {
            Some(_) => Ok(()),
            None => Err(Error::validation(field, "no user has this id")),
        }
    }

    /// The `info` notification to a new assignee, keyed by the version that
    /// makes the assignment.
    fn assignment_intent(
        &self,
        incident: &Incident,
        version: i64,
        assignee: UserId,
        now: Timestamp,
    ) -> NotificationIntent {
        NotificationIntent {
            key: format!("{}:assigned:{}:{}", incident.id, version, assignee),
            user: assignee,
            message: format!("You were assigned incident {}", quoted(&incident.title)),
            kind: NotificationType::Info,
            incident_id: Some(incident.id),
            created_at: now,
        }
    }

    /// Creates an incident reported by the caller; its SLA follows its priority.
    pub async fn create_incident(&self, who: &Principal, input: NewIncident) -> Result<Incident> {
        rbac::require(who.role, Permission::CreateIncident)?;
        if input.assigned_to.is_some() {
            rbac::require(who.role, Permission::AssignOnReport)?;
        }
        validate_title(&input.title)?;
        let description = input.description.unwrap_or_default();
        check_len("description", &description, 0, MAX_DESCRIPTION)?;
        if let Some(a) = input.assigned_to {
            self.require_user("assignedTo", a).await?;
        }
        // Held from the limit check to the commit (only for a limited caller).
        let _reporting = match (self.inner.config.report_limit, who.role) {
            (Some(_), Role::User) => {
                use std::hash::{BuildHasher, BuildHasherDefault};
                let hash =
                    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                        .hash_one(who.id);
                let stripe = (hash % REPORT_LOCKS as u64) as usize;
                Some(self.inner.report_locks[stripe].lock().await)
            }
            _ => None,
        };
        let now = self.now();
        self.check_report_limit(who, now).await?;
        let mut incident = Incident::open(input.title, who.id, now);
        incident.description = description;
        incident.kind = input.kind.unwrap_or_default();
        incident.assigned_to = input.assigned_to;
        self.sla()
            .assign(&mut incident, input.priority.unwrap_or_default());
        incident.next_due_at = escalation::next_due(&incident, self.sla(), self.escalation());
        let audit = AuditEntry::new(
            AuditAction::IncidentCreated,
            Actor::User(who.id),
            Some(incident.id.to_string()),
            format!(
                "incident {} created ({} priority)",
                quoted(&incident.title),
                incident.priority
            ),
            now,
        );
        let outbox = match incident.assigned_to {
            Some(a) if a != who.id => {
                vec![self.assignment_intent(&incident, incident.version, a, now)]
            }
            _ => Vec::new(),
        };
        self.commit(Change {
            incident: Some(IncidentWrite::Insert(incident.clone())),
            audit: vec![audit],
            outbox,
            ..Change::default()
        })
        .await?;
        Ok(incident)
    }

    /// Refuses a report by a `user` who reached [`EngineConfig::report_limit`].
    /// Counted from the store (the incidents the caller reported within the
    /// window), so the limit holds across nodes and restarts.
    async fn check_report_limit(&self, who: &Principal, now: Timestamp) -> Result<()> {
        let Some(limit) = self.inner.config.report_limit else {
            return Ok(());
        };
        if who.role != Role::User {
            return Ok(());
        }
        let window = chrono::Duration::from_std(limit.window).unwrap_or(chrono::TimeDelta::MAX);
        let since = now
            .checked_sub_signed(window)
            .map_or(Timestamp::MIN_UTC, |t| {
                t + chrono::Duration::milliseconds(1)
            });
        let filter = IncidentFilter {
            reported_by: Some(who.id),
            created_from: Some(since),
            ..Default::default()
        };
        let count = self.inner.store.count_incidents(&filter).await?;
        if count < u64::from(limit.max) {
            return Ok(());
        }
        // The next report may come when the oldest of the last `max` leaves
        // the window.
        let wait = match Some(limit.max).filter(|m| *m <= crate::model::MAX_LIMIT) {
            Some(max) => self
                .inner
                .store
                .list_incidents(&filter, PageRequest::first(max))
                .await?
                .items
                .last()
                .and_then(|oldest| (oldest.created_at + window - now).to_std().ok())
                .unwrap_or(limit.window),
            None => limit.window,
        };
        Err(Error::rate_limited(
            format!(
                "at most {} incidents may be reported per {} s; try again later",
                limit.max,
                limit.window.as_secs()
            ),
            wait.max(Duration::from_secs(1)),
        ))
    }

    /// One incident: admins and engineers read any; other callers only those they
    /// reported (others are `NotFound`, which leaks nothing).
    pub async fn get_incident(&self, who: &Principal, id: IncidentId) -> Result<Incident> {
        let incident = self.load_incident(id).await?;
        if rbac::allows(who.role, Permission::ReadAnyIncident) || incident.reported_by == who.id {
            Ok(incident)
        } else {
            Err(Error::NotFound { entity: "incident" })
        }
    }

    /// Incidents matching a filter, newest first.
    pub async fn list_incidents(
        &self,
        who: &Principal,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        let shared = self.list_incidents_shared(who, filter, page).await?;
        Ok(Arc::unwrap_or_clone(shared))
    }

    /// [`Engine::list_incidents`] without the copy: while the page is cached,
    /// every caller gets the same `Arc`, so a host can key what it derives from
    /// a page (a serialized body, say) on it and drop that with the page.
    pub async fn list_incidents_shared(
        &self,
        who: &Principal,
        filter: &IncidentFilter,
        page: PageRequest,
    ) -> Result<Arc<Page<Incident>>> {
        rbac::require(who.role, Permission::ListIncidents)?;
        page.validate()?;
        filter.validate()?;
        // A query about one instant (SLA violations now) is never asked twice.
        let at = match filter.violated_at {
            Some(_) => None,
            None => self.inner.store.generation(),
        };
        if let Some(hit) = self.inner.cache.page(filter, page, at) {
            return Ok(hit);
        }
        let found = Arc::new(self.inner.store.list_incidents(filter, page).await?);
        self.inner
            .cache
            .put_page(filter.clone(), page, at, Arc::clone(&found));
        Ok(found)
    }

    /// Applies a status change's side effects: response and resolution clocks,
    /// hold pauses, lifecycle timestamps.
    fn transition(incident: &mut Incident, to: Status, now: Timestamp) -> Result<()> {
        let from = incident.status;
        if !from.can_transition_to(to) {
            return Err(Error::InvalidTransition { from, to });
        }
        if from == Status::OnHold {
            sla::resume(incident, now);
        }
        if to == Status::OnHold {
            sla::pause(incident, now);
        }
        if from == Status::Open && incident.acknowledged_at.is_none() {
            incident.acknowledged_at = Some(now);
        }
        match to {
            Status::Resolved => incident.resolved_at = Some(now),
            Status::Closed => incident.closed_at = Some(now),
            Status::InProgress if from == Status::Resolved => incident.resolved_at = None,
            _ => {}
        }
        incident.status = to;
        Ok(())
    }

    /// Re-targets the SLA for a priority; a new at-risk instant still ahead re-arms
    /// the warning.
    fn retarget(&self, incident: &mut Incident, priority: Priority, now: Timestamp) {
        self.sla().assign(incident, priority);
        if !incident.sla_breached && self.sla().at_risk_instant(incident) > now {
            incident.at_risk_at = None;
        }
    }

    /// Commits an update computed from `before`, with its audit and intents.
    async fn commit_update(
        &self,
        before: &Incident,
        mut after: Incident,
        now: Timestamp,
        audit: Vec<AuditEntry>,
        outbox: Vec<NotificationIntent>,
    ) -> Result<Incident> {
        after.updated_at = now;
        after.version = before.version + 1;
        after.next_due_at = escalation::next_due(&after, self.sla(), self.escalation());
        self.commit(Change {
            incident: Some(IncidentWrite::Update {
                incident: after.clone(),
                expected_version: before.version,
            }),
            audit,
            outbox,
            ..Change::default()
        })
        .await?;
        Ok(after)
    }

    /// Changes any subset of an incident's editable fields. With
    /// `expected_version`, a concurrent change since that version is a `Conflict`.
    pub async fn update_incident(
        &self,
        who: &Principal,
        id: IncidentId,
        patch: IncidentPatch,
        expected_version: Option<i64>,
    ) -> Result<Incident> {
        rbac::require(who.role, Permission::UpdateIncident)?;
        if let Some(t) = &patch.title {
            validate_title(t)?;
        }
        if let Some(d) = &patch.description {
            check_len("description", d, 0, MAX_DESCRIPTION)?;
        }
        if let Some(Some(a)) = patch.assigned_to {
            self.require_user("assignedTo", a).await?;
        }
        let before = self.load_incident(id).await?;
        if let Some(v) = expected_version.filter(|v| *v != before.version) {
            return Err(Error::conflict(format!(
                "incident {id} is at version {}, not {v}; reload and retry",
                before.version
            )));
        }
        let now = self.now();
        let mut after = before.clone();
        let mut changed = Vec::new();
        if let Some(t) = patch.title.filter(|t| *t != before.title) {
            after.title = t;
            changed.push("title");
        }
        if let Some(d) = patch.description.filter(|d| *d != before.description) {
            after.description = d;
            changed.push("description");
        }
        if let Some(k) = patch.kind.filter(|k| *k != before.kind) {
            after.kind = k;
            changed.push("type");
        }
        if let Some(a) = patch.assigned_to.filter(|a| *a != before.assigned_to) {
            after.assigned_to = a;
            changed.push("assignedTo");
        }
        if let Some(s) = patch.status.filter(|s| *s != before.status) {
            Self::transition(&mut after, s, now)?;
            changed.push("status");
        }
        if let Some(p) = patch.priority.filter(|p| *p != before.priority) {
            self.retarget(&mut after, p, now);
            changed.push("priority");
        }
        if changed.is_empty() {
            return Ok(before);
        }
        let target = Some(id.to_string());
        let actor = Actor::User(who.id);
        let mut audit = vec![AuditEntry::new(
            AuditAction::IncidentUpdated,
            actor,
            target.clone(),
            format!(
                "incident {} updated: {}",
                quoted(&after.title),
                changed.join(", ")
            ),
            now,
        )];
        if after.status != before.status {
            audit.push(AuditEntry::new(
                AuditAction::StatusChanged,
                actor,
                target,
                format!("status changed from {} to {}", before.status, after.status),
                now,
            ));
        }
        let mut outbox = Vec::new();
        if let Some(a) = after
            .assigned_to
            .filter(|a| before.assigned_to != Some(*a) && *a != who.id)
        {
            outbox.push(self.assignment_intent(&after, before.version + 1, a, now));
        }
        self.commit_update(&before, after, now, audit, outbox).await
    }

    /// Changes only the status (a convenience over [`Engine::update_incident`]).
    pub async fn change_status(
        &self,
        who: &Principal,
        id: IncidentId,
        status: Status,
    ) -> Result<Incident> {
        self.update_incident(
            who,
            id,
            IncidentPatch {
                status: Some(status),
                ..Default::default()
            },
            None,
        )
        .await
    }

    /// Deletes an incident (admin). Its audit trail stays.
    pub async fn delete_incident(&self, who: &Principal, id: IncidentId) -> Result<()> {
        rbac::require(who.role, Permission::DeleteIncident)?;
        let incident = self.load_incident(id).await?;
        let audit = AuditEntry::new(
            AuditAction::IncidentDeleted,
            Actor::User(who.id),
            Some(id.to_string()),
            format!("incident {} deleted", quoted(&incident.title)),
            self.now(),
        );
        self.commit(Change {
            incident: Some(IncidentWrite::Delete {
                id,
                expected_version: incident.version,
            }),
            audit: vec![audit],
            ..Change::default()
        })
        .await
    }

    // ----- SLA and escalation -------------------------------------------------------

    /// Re-assigns an incident's SLA from a priority (admin).
    pub async fn assign_sla(
        &self,
        who: &Principal,
        id: IncidentId,
        priority: Priority,
    ) -> Result<Incident> {
        rbac::require(who.role, Permission::AssignSla)?;
        let before = self.load_incident(id).await?;
        let now = self.now();
        let mut after = before.clone();
        self.retarget(&mut after, priority, now);
        let audit = AuditEntry::new(
            AuditAction::SlaAssigned,
            Actor::User(who.id),
            Some(id.to_string()),
            format!(
                "SLA of {}h assigned to {} ({} priority), deadline {}",
                after.sla_target_ms as f64 / 3_600_000.0,
                quoted(&after.title),
                priority,
                after.sla_deadline.to_rfc3339()
            ),
            now,
        );
        self.commit_update(&before, after, now, vec![audit], Vec::new())
            .await
    }

    /// Raises an incident's escalation level by one (admin) and notifies the
    /// level's targets.
    pub async fn escalate_manually(
        &self,
        who: &Principal,
        id: IncidentId,
        reason: Option<String>,
    ) -> Result<Incident> {
        rbac::require(who.role, Permission::EscalateManually)?;
        if let Some(r) = &reason {
            check_len("reason", r, 0, MAX_REASON)?;
        }
        let before = self.load_incident(id).await?;
        if before.status.is_done() {
            return Err(Error::conflict(format!(
                "incident {id} is {} and cannot be escalated",
                before.status
            )));
        }
        let now = self.now();
        let mut after = before.clone();
        after.escalation_level += 1;
        after.escalated_at = Some(now);
        let level = after.escalation_level;
        let why = reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let audit = AuditEntry::new(
            AuditAction::Escalation,
            Actor::User(who.id),
            Some(id.to_string()),
            format!(
                "incident {} escalated manually to level {level}{why}",
                quoted(&after.title)
            ),
            now,
        );
        let message = format!(
            "Incident {} escalated to level {level}{why}",
            quoted(&after.title)
        );
        let targets = self.escalation().level(level).targets.clone();
        let outbox = self
            .intents(
                &after,
                &targets,
                &format!("level{level}"),
                NotificationType::Escalation,
                &message,
                now,
            )
            .await?;
        self.commit_update(&before, after, now, vec![audit], outbox)
            .await
    }

    /// Open incidents violating their SLA now, with counts.
    pub async fn list_violations(&self, who: &Principal, page: PageRequest) -> Result<Violations> {
        rbac::require(who.role, Permission::ListViolations)?;
        page.validate()?;
        let filter = IncidentFilter {
            violated_at: Some(self.now()),
            ..Default::default()
        };
        let store = &self.inner.store;
        let total = store.count_incidents(&filter).await?;
        let notified = store
            .count_incidents(&IncidentFilter {
                sla_breached: Some(true),
                ..filter.clone()
            })
            .await?;
        let page = store.list_incidents(&filter, page).await?;
        Ok(Violations {
            total,
            notified,
            skipped: total.saturating_sub(notified),
            page,
        })
    }

    /// Escalated incidents that are not closed.
    pub async fn list_escalations(
        &self,
        who: &Principal,
        page: PageRequest,
    ) -> Result<Page<Incident>> {
        rbac::require(who.role, Permission::ListEscalations)?;
        page.validate()?;
        let filter = IncidentFilter {
            escalated: Some(true),
            status: Status::ALL
                .iter()
                .copied()
                .filter(|s| *s != Status::Closed)
                .collect(),
            ..Default::default()
        };
        self.inner.store.list_incidents(&filter, page).await
    }

    /// The users a list of targets means for an incident, without duplicates.
    /// `Assignee` falls back to every engineer (then every admin) when the
    /// incident is unassigned, so no breach goes unnoticed.
    async fn recipients(&self, incident: &Incident, targets: &[Target]) -> Result<Vec<UserId>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for t in targets {
            let users = match t {
                Target::Assignee => match incident.assigned_to {
                    Some(a) => vec![a],
                    None => {
                        let mut ids = self.role_members(Role::Engineer).await?;
                        if ids.is_empty() {
                            ids = self.role_members(Role::Admin).await?;
                        }
                        ids
                    }
                },
                Target::Role(r) => self.role_members(*r).await?,
                Target::Users(ids) => ids.clone(),
            };
            out.extend(users.into_iter().filter(|u| seen.insert(*u)));
        }
        Ok(out)
    }

    async fn role_members(&self, role: Role) -> Result<Vec<UserId>> {
        Ok(self
            .inner
            .store
            .users_with_role(role)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect())
    }

    /// One intent per recipient, keyed `incident:step:user`.
    async fn intents(
        &self,
        incident: &Incident,
        targets: &[Target],
        step_key: &str,
        kind: NotificationType,
        message: &str,
        now: Timestamp,
    ) -> Result<Vec<NotificationIntent>> {
        Ok(self
            .recipients(incident, targets)
            .await?
            .into_iter()
            .map(|user| NotificationIntent {
                key: format!("{}:{step_key}:{user}", incident.id),
                user,
                message: message.to_string(),
                kind,
                incident_id: Some(incident.id),
                created_at: now,
            })
            .collect())
    }

    /// Applies one due automatic step to `incident` (in memory), adding its audit
    /// entries and intents.
    async fn apply_step(
        &self,
        incident: &mut Incident,
        step: Step,
        now: Timestamp,
        audit: &mut Vec<AuditEntry>,
        outbox: &mut Vec<NotificationIntent>,
        report: &mut SweepReport,
    ) -> Result<()> {
        let target = Some(incident.id.to_string());
        let title = quoted(&incident.title);
        match step {
            Step::ResponseBreach => {
                incident.response_breached_at = Some(now);
                report.response_breaches += 1;
                audit.push(AuditEntry::new(
                    AuditAction::SlaResponseBreach,
                    Actor::System,
                    target,
                    format!(
                        "response target missed for {title}: still open at {}",
                        incident.response_deadline.to_rfc3339()
                    ),
                    now,
                ));
                let message =
                    format!("Response target missed for {title}: nobody has acknowledged it yet");
                outbox.extend(
                    self.intents(
                        incident,
                        &[Target::Assignee],
                        "response",
                        NotificationType::Warning,
                        &message,
                        now,
                    )
                    .await?,
                );
            }
            Step::AtRisk => {
                incident.at_risk_at = Some(now);
                report.at_risk += 1;
                let deadline = incident.sla_deadline.to_rfc3339();
                audit.push(AuditEntry::new(
                    AuditAction::SlaAtRisk,
                    Actor::System,
                    target,
                    format!("SLA at risk for {title}: deadline {deadline}"),
                    now,
                ));
                let message = format!("SLA at risk for {title}: deadline {deadline}");
                let key = format!("at-risk:{}", incident.sla_deadline.timestamp_millis());
                outbox.extend(
                    self.intents(
                        incident,
                        &[Target::Assignee],
                        &key,
                        NotificationType::Warning,
                        &message,
                        now,
                    )
                    .await?,
                );
            }
            Step::Breach => {
                incident.sla_breached = true;
                incident.breached_at = Some(now);
                report.breaches += 1;
                audit.push(AuditEntry::new(
                    AuditAction::SlaBreach,
                    Actor::System,
                    target.clone(),
                    format!(
                        "SLA violated for {title}: deadline {}",
                        incident.sla_deadline.to_rfc3339()
                    ),
                    now,
                ));
                let message = format!("SLA violated for {title}");
                let targets = self.escalation().level(1).targets.clone();
                outbox.extend(
                    self.intents(
                        incident,
                        &targets,
                        "breach",
                        NotificationType::Escalation,
                        &message,
                        now,
                    )
                    .await?,
                );
                if incident.escalation_level == 0 && self.escalation().breach_is_level_one() {
                    incident.escalation_level = 1;
                    incident.escalated_at = Some(now);
                    report.escalations += 1;
                    audit.push(AuditEntry::new(
                        AuditAction::Escalation,
                        Actor::System,
                        target,
                        format!("incident {title} escalated to level 1 at SLA breach"),
                        now,
                    ));
                }
            }
            Step::Escalate(level) => {
                incident.escalation_level = level;
                incident.escalated_at = Some(now);
                report.escalations += 1;
                audit.push(AuditEntry::new(
                    AuditAction::Escalation,
                    Actor::System,
                    target,
                    format!("incident {title} escalated automatically to level {level}"),
                    now,
                ));
                let message = format!(
                    "Incident {title} escalated to level {level}: SLA breached and not acknowledged"
                );
                let targets = self.escalation().level(level).targets.clone();
                outbox.extend(
                    self.intents(
                        incident,
                        &targets,
                        &format!("level{level}"),
                        NotificationType::Escalation,
                        &message,
                        now,
                    )
                    .await?,
                );
            }
        }
        Ok(())
    }

    /// One SLA sweep step: claims the incidents whose next step is due, applies
    /// every step due by now (missed response, at-risk, breach, escalation levels),
    /// and commits each incident with its audit entries and notification intents.
    /// Safe to run on any number of nodes at once: claims are exclusive and the
    /// commit checks the version, so each step is applied exactly once.
    pub async fn sweep_step(&self) -> Result<SweepReport> {
        let now = self.now();
        let cfg = &self.inner.config;
        let claimed = self
            .inner
            .store
            .claim_due(now, cfg.claim_lease, cfg.sweep_batch)
            .await?;
        let mut report = SweepReport {
            claimed: claimed.len(),
            ..Default::default()
        };
        // A failed commit (the store is down) fails the step, but only after
        // the rest of the batch was tried: the others are not left to wait out
        // their claim's lease.
        let mut failed: Option<Error> = None;
        for before in claimed {
            let mut after = before.clone();
            let (mut audit, mut outbox) = (Vec::new(), Vec::new());
            let counted = (report.breaches, report.response_breaches);
            // Every step moves the incident forward, so this ends; the bound only
            // guards against a policy with zero delays repeating many times.
            let mut applied = Ok(());
            for _ in 0..64 {
                match escalation::next_step(&after, self.sla(), self.escalation()) {
                    Some((step, at)) if at <= now => {
                        applied = self
                            .apply_step(&mut after, step, now, &mut audit, &mut outbox, &mut report)
                            .await;
                        if applied.is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            if let Err(e) = applied {
                warn!(incident = %before.id, error = %e, "SLA step not applied; retried after the claim's lease");
                failed.get_or_insert(e);
                continue;
            }
            match self.commit_update(&before, after, now, audit, outbox).await {
                Ok(_) => self.inner.counters.breaches(
                    report.breaches - counted.0,
                    report.response_breaches - counted.1,
                ),
                Err(Error::Conflict { .. } | Error::NotFound { .. }) => {
                    // Changed or deleted since the claim: the change re-armed its
                    // next step; nothing was applied twice.
                    report.conflicts += 1;
                    debug!(incident = %before.id, "sweep lost a claim to a concurrent change");
                }
                Err(e) => {
                    warn!(incident = %before.id, error = %e, "SLA step not committed; retried after the claim's lease");
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Runs sweep steps until nothing is due now.
    pub async fn sweep_all(&self) -> Result<SweepReport> {
        let mut total = SweepReport::default();
        loop {
            let r = self.sweep_step().await?;
            total.claimed += r.claimed;
            total.response_breaches += r.response_breaches;
            total.at_risk += r.at_risk;
            total.breaches += r.breaches;
            total.escalations += r.escalations;
            total.conflicts += r.conflicts;
            if r.claimed < self.inner.config.sweep_batch as usize {
                return Ok(total);
            }
        }
    }

    // ----- notifications ------------------------------------------------------------

    /// The caller's notifications, newest first.
    pub async fn list_notifications(
        &self,
        who: &Principal,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        rbac::require(who.role, Permission::ReadOwnNotifications)?;
        page.validate()?;
        self.inner.store.list_notifications(who.id, page).await
    }

    /// The caller's new notifications as they are delivered by this process, for
    /// live streams (Server-Sent Events). Only the caller's own ever appear. A
    /// stream that falls far behind skips ahead; `list_notifications` has all.
    ///
    /// A user holds at most [`EngineConfig::max_streams_per_user`] streams at
    /// once: one more is [`Error::RateLimited`] until one is dropped. The
    /// stream is fused: polled again after its end, it stays ended.
    pub fn subscribe_notifications(
        &self,
        who: &Principal,
    ) -> Result<impl futures::stream::FusedStream<Item = Notification> + Send + 'static + use<>>
    {
        use futures::StreamExt;
        rbac::require(who.role, Permission::ReadOwnNotifications)?;
        let slot = StreamSlot::take(
            &self.inner.streams,
            who.id,
            self.inner.config.max_streams_per_user,
        )?;
        let me = who.id;
        let rx = self.inner.live.subscribe();
        Ok(
            futures::stream::unfold((rx, slot), move |(mut rx, slot)| async move {
                loop {
                    match rx.recv().await {
                        Ok(n) if n.user == me => return Some((n, (rx, slot))),
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            continue;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            })
            .fuse(),
        )
    }

    /// The live stream of the bearer of `token` ([`Engine::subscribe_notifications`]
    /// after [`Engine::authenticate`]), which ends when the token expires: a
    /// stream never outlives the credentials that opened it.
    pub async fn open_notification_stream(
        &self,
        token: &str,
    ) -> Result<impl futures::stream::FusedStream<Item = Notification> + Send + 'static + use<>>
    {
        let claims = self.inner.keys.verify(token, self.now())?;
        let who = self.principal_of(&claims).await?;
        let events = self.subscribe_notifications(&who)?;
        let left_ms = claims
            .exp
            .saturating_mul(1000)
            .saturating_sub(self.now().timestamp_millis())
            .max(0);
        let expiry = tokio::time::sleep(Duration::from_millis(left_ms as u64));
        Ok(futures::StreamExt::fuse(futures::StreamExt::take_until(
            events, expiry,
        )))
    }

    /// Dead-lettered notifications, oldest first, at most `limit` (1..=500):
    /// deliveries that failed in a way retrying cannot fix, or ran out of
    /// attempts (admin).
    pub async fn list_dead_letters(&self, who: &Principal, limit: u32) -> Result<Vec<DeadLetter>> {
        rbac::require(who.role, Permission::ManageDeadLetters)?;
        PageRequest::first(limit).validate()?;
        self.inner.queue.dead_letters(limit as usize).await
    }

    /// Hands the dead-lettered notification `key` to the workers again, with
    /// fresh attempts (admin; audited as `DEAD_LETTER_REDRIVEN`). Channels
    /// that had already delivered it do not send it again. `NotFound` when no
    /// dead letter has this key.
    pub async fn redrive_dead_letter(&self, who: &Principal, key: &str) -> Result<()> {
        rbac::require(who.role, Permission::ManageDeadLetters)?;
        if !self.inner.queue.redrive(key).await? {
            return Err(Error::NotFound {
                entity: "dead letter",
            });
        }
        let target: String = key.chars().take(200).collect();
        let audit = AuditEntry::new(
            AuditAction::DeadLetterRedriven,
            Actor::User(who.id),
            Some(target.clone()),
            format!("dead-lettered notification {target} redriven"),
            self.now(),
        );
        self.commit(Change {
            audit: vec![audit],
            ..Change::default()
        })
        .await
    }

    /// Marks one of the caller's notifications read; anybody else's is `NotFound`.
    pub async fn mark_notification_read(
        &self,
        who: &Principal,
        id: NotificationId,
    ) -> Result<Notification> {
        rbac::require(who.role, Permission::ReadOwnNotifications)?;
        self.inner.store.mark_read(who.id, id).await
    }

    /// One relay step: publishes due outbox entries to the queue. An entry stays in
    /// the outbox until a worker confirms delivery; if the queue loses the job, the
    /// entry is published again after [`EngineConfig::outbox_lease`].
    pub async fn relay_step(&self) -> Result<usize> {
        let cfg = &self.inner.config;
        let entries = self
            .inner
            .store
            .claim_outbox(self.now(), cfg.outbox_lease, cfg.notify_batch)
            .await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let jobs = entries
            .iter()
            .map(|e| {
                serde_json::to_value(&e.intent)
                    .map(|payload| NewJob::new(e.intent.key.clone(), payload))
                    .map_err(|err| Error::backend("serde_json", err))
            })
            .collect::<Result<Vec<_>>>()?;
        let n = jobs.len();
        self.inner.queue.enqueue(jobs).await?;
        Ok(n)
    }

    /// One worker step: reserves jobs, delivers each to the in-app store (by
    /// idempotency key) and the channels, then acks the job and completes its
    /// outbox entry. A failed delivery is reported to the queue for retry.
    /// While it works the jobs stay reserved to it ([`Queue::extend`]), however
    /// slow the channels are: no other worker is handed them meanwhile.
    pub async fn work_step(&self) -> Result<DeliveryReport> {
        let cfg = &self.inner.config;
        let jobs = self
            .inner
            .queue
            .reserve(cfg.notify_batch as usize, cfg.job_visibility)
            .await?;
        if jobs.is_empty() {
            return Ok(DeliveryReport::default());
        }
        let lost = Released::default();
        let work = std::pin::pin!(self.deliver_jobs(&jobs, &lost));
        let beat = std::pin::pin!(self.keep_reserved(&jobs, &lost));
        match futures::future::select(work, beat).await {
            futures::future::Either::Left((done, _)) => done,
            futures::future::Either::Right(((), work)) => work.await,
        }
    }

    /// Extends the reservation of `jobs` every third of the visibility until
    /// none is held any more (or, in practice, until the delivery that runs
    /// beside it ends and drops it). `lost` holds the reservations no longer ours:
    /// those the delivery handed back (failed, dead-lettered, being acked),
    /// and those whose reservation proved stale, whose delivery then stops
    /// before its next channel.
    async fn keep_reserved(&self, jobs: &[Job], lost: &Released) {
        let visibility = self.inner.config.job_visibility;
        let every = (visibility / 3).max(Duration::from_millis(1));
        loop {
            tokio::time::sleep(every).await;
            let held = lost.held(jobs);
            if held.is_empty() {
                return;
            }
            match self.inner.queue.extend(&held, visibility).await {
                Ok(flags) => {
                    for (job, kept) in held.iter().zip(flags) {
                        if !kept {
                            warn!(key = %job.key, "job reservation lost while delivering: another worker has it");
                            lost.insert(job);
                        }
                    }
                }
                // The next beat tries again; the visibility is three beats.
                Err(e) => warn!(error = %e, "could not extend job reservations"),
            }
        }
    }

    /// Delivers reserved jobs one after another, then acks the delivered ones
    /// and completes their outbox entries. Skips a job whose reservation is in
    /// `lost`: its new holder delivers it.
    async fn deliver_jobs(&self, jobs: &[Job], lost: &Released) -> Result<DeliveryReport> {
        let cfg = &self.inner.config;
        let mut report = DeliveryReport {
            jobs: jobs.len(),
            ..Default::default()
        };
        let is_lost = |job: &Job| lost.contains(job);
        // Handed back: the heartbeat stops extending it (and would otherwise
        // report it lost).
        let release = |job: &Job| lost.insert(job);
        let mut done = Vec::with_capacity(jobs.len());
        let mut dead = Vec::new();
        for job in jobs {
            if is_lost(job) {
                continue;
            }
            match self.deliver(&job.payload, || is_lost(job)).await {
                Ok(inserted) => {
                    if inserted {
                        report.delivered += 1;
                    } else {
                        report.duplicates += 1;
                    }
                    done.push(job.clone());
                }
                Err(e) if is_lost(job) => {
                    debug!(key = %job.key, error = %e, "delivery stopped: reservation lost");
                }
                Err(e) => {
                    report.failed += 1;
                    release(job);
                    let message = e.to_string();
                    let outcome = if e.is_permanent() {
                        warn!(key = %job.key, attempt = job.attempt, error = %e, "notification undeliverable: dead-lettered");
                        self.inner.queue.dead_letter(job, &message).await?
                    } else {
                        warn!(key = %job.key, attempt = job.attempt, error = %e, "notification delivery failed");
                        self.inner.queue.fail(job, &message).await?
                    };
                    if outcome == FailOutcome::DeadLettered {
                        dead.push(job.key.clone());
                    }
                }
            }
        }
        if !dead.is_empty() {
            // Dead letters wait in the queue for an admin's redrive: the relay
            // must not publish them again. If this stops before it, the relay
            // publishes an entry once more and its job is dead-lettered again.
            report.dead_lettered = dead.len();
            self.inner.store.complete_outbox(&dead, self.now()).await?;
        }
        if !done.is_empty() {
            // Delivered: the outbox entries are done and the jobs acked, each
            // all at once. If this stops half-way, the relay or the queue hands
            // the work out again and delivery, idempotent by key, repeats
            // nothing.
            let keys: Vec<String> = done.iter().map(|j| j.key.clone()).collect();
            self.inner.store.complete_outbox(&keys, self.now()).await?;
            done.iter().for_each(release);
            self.inner
                .queue
                .ack_and_reserve(&done, 0, cfg.job_visibility)
                .await?;
        }
        Ok(report)
    }

    /// Delivers one intent: the in-app record (idempotent), then every channel,
    /// stopping before a channel once `lost()` says another worker holds the
    /// job now. Returns whether the in-app record was new.
    async fn deliver(&self, payload: &serde_json::Value, lost: impl Fn() -> bool) -> Result<bool> {
        // A payload that is not an intent never will be: no retry helps.
        let intent: NotificationIntent = serde_json::from_value(payload.clone()).map_err(|e| {
            Error::undeliverable(
                "queue",
                format!("job payload is not a notification intent: {e}"),
            )
        })?;
        let n = Notification::from_intent(&intent, self.now());
        let inserted = match self.inner.store.insert_notification(&n).await {
            Ok(inserted) => {
                self.count_delivery(crate::metrics::IN_APP, !inserted, Ok(()))?;
                inserted
            }
            Err(e) => {
                return self
                    .count_delivery(crate::metrics::IN_APP, false, Err(e))
                    .map(|()| false);
            }
        };
        if inserted {
            // At once, before the channels: a later failure retries the job,
            // and the retry finds the record there and would not send it.
            // Nobody listening is fine.
            let _ = self.inner.live.send(n.clone());
        }
        // Each channel at most once per key: a retry caused by one failing
        // channel does not send again through the others. One channel's
        // failure does not keep the others from delivering; the job is
        // dead-lettered at once only when every failure is permanent.
        let mut failure: Option<Error> = None;
        for channel in &self.inner.channels {
            if lost() {
                return Err(Error::unavailable(
                    "the job's reservation was lost to another worker",
                    Duration::ZERO,
                ));
            }
            if self
                .inner
                .store
                .was_delivered(&n.key, channel.name())
                .await?
            {
                self.count_delivery(channel.name(), true, Ok(()))?;
                continue;
            }
            let sent = channel.deliver(&n).await;
            let failed = sent.as_ref().err().map(Error::is_permanent);
            match self.count_delivery(channel.name(), false, sent) {
                Ok(()) => {
                    self.inner
                        .store
                        .record_delivery(&n.key, channel.name())
                        .await?;
                }
                Err(e) => {
                    debug_assert!(failed.is_some());
                    failure = Some(match failure {
                        Some(first) if first.is_permanent() && !e.is_permanent() => e,
                        Some(first) => first,
                        None => e,
                    });
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(inserted)
    }

    /// Relays and delivers until the outbox has nothing due and the queue nothing
    /// ready. For embedding, examples and tests; servers run the steps in loops.
    pub async fn flush_notifications(&self) -> Result<DeliveryReport> {
        let mut total = DeliveryReport::default();
        loop {
            let relayed = self.relay_step().await?;
            let r = self.work_step().await?;
            total.jobs += r.jobs;
            total.delivered += r.delivered;
            total.duplicates += r.duplicates;
            total.failed += r.failed;
            total.dead_lettered += r.dead_lettered;
            if relayed == 0 && r.jobs == 0 {
                return Ok(total);
            }
        }
    }

    // ----- background loops -----------------------------------------------------------

    /// Runs the SLA monitor until `shutdown` turns true: sweeps everything due,
    /// then sleeps until the next due instant, at most `poll`, or until a change
    /// made through this engine re-arms it. A step in progress finishes before it
    /// returns.
    pub async fn run_sla_monitor(
        &self,
        poll: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        while !*shutdown.borrow() {
            // Awake: a change committed from here on (which the lookup below
            // may miss) wakes the monitor again.
            self.inner.armed_until.store(i64::MIN, SeqCst);
            if let Err(e) = self.sweep_all().await {
                warn!(error = %e, "SLA sweep failed; retrying");
            }
            let now = self.now();
            let wait = match self.inner.store.next_due_at().await {
                Ok(Some(at)) => (at - now).to_std().unwrap_or(Duration::ZERO).min(poll),
                _ => poll,
            };
            let wake = chrono::Duration::from_std(wait)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .map_or(i64::MAX, |t| t.timestamp_millis());
            self.inner.armed_until.store(wake, SeqCst);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.rearm.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Runs the outbox relay and the notification worker until `shutdown` turns
    /// true. When idle it waits for the queue, at most `poll`. A step in progress
    /// finishes before it returns.
    pub async fn run_notifier(
        &self,
        poll: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        while !*shutdown.borrow() {
            let relayed = self.relay_step().await;
            let worked = self.work_step().await;
            let idle = match (&relayed, &worked) {
                (Ok(0), Ok(r)) => r.jobs == 0,
                (Ok(_), Ok(_)) => false,
                _ => {
                    for e in [relayed.err(), worked.err()].into_iter().flatten() {
                        warn!(error = %e, "notification relay or worker failed; retrying");
                    }
                    // Back off rather than spin while a backend is down.
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            if idle {
                tokio::select! {
                    _ = self.inner.queue.wait(poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    // ----- reports ------------------------------------------------------------------

    /// The incidents matching `filter`, newest first, as a stream of pages of up to
    /// `batch` (keyset pagination underneath: memory stays bounded and every
    /// incident comes exactly once). Checks the caller may export reports.
    /// The stream is fused: polled again after its end (as an HTTP compression
    /// body does, looking for trailers), it stays ended instead of panicking.
    pub fn export_incidents(
        &self,
        who: &Principal,
        filter: IncidentFilter,
        batch: u32,
    ) -> Result<impl futures::stream::FusedStream<Item = Result<Vec<Incident>>> + Send + 'static>
    {
        use futures::StreamExt;
        rbac::require(who.role, Permission::ExportReports)?;
        PageRequest::first(batch).validate()?;
        filter.validate()?;
        let store = self.inner.store.clone();
        // State: Some(cursor) = fetch the page after `cursor`; None = done.
        Ok(futures::stream::unfold(Some(None), move |state| {
            let (store, filter) = (store.clone(), filter.clone());
            async move {
                let cursor = state?;
                match store
                    .list_incidents(
                        &filter,
                        PageRequest {
                            limit: batch,
                            cursor,
                        },
                    )
                    .await
                {
                    Ok(page) => Some((Ok(page.items), page.next.map(Some))),
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
        .fuse())
    }

    // ----- audit --------------------------------------------------------------------

    /// The audit log, newest first.
    pub async fn list_audit(
        &self,
        who: &Principal,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        rbac::require(who.role, Permission::ReadAudit)?;
        page.validate()?;
        filter.validate()?;
        self.inner.store.list_audit(filter, page).await
    }
}

// ----- operations: metrics and retention (SPEC §8) --------------------------------------

/// The reservations of one worker step that are no longer its own: handed
/// back (failed, dead-lettered, being acked) or lost to another worker.
#[derive(Default)]
struct Released(std::sync::Mutex<HashSet<String>>);

impl Released {
    fn tokens(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn contains(&self, job: &Job) -> bool {
        self.tokens().contains(&job.token)
    }

    fn insert(&self, job: &Job) {
        self.tokens().insert(job.token.clone());
    }

    /// The jobs of `jobs` still held.
    fn held(&self, jobs: &[Job]) -> Vec<Job> {
        let tokens = self.tokens();
        jobs.iter()
            .filter(|j| !tokens.contains(&j.token))
            .cloned()
            .collect()
    }
}

/// Delivered outbox rows removed per retention step.
const RETENTION_BATCH: u32 = 1_000;

/// The default age past which delivered outbox rows and their channel receipts
/// are removed (SPEC §8): 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Engine {
    /// Counts one delivery through `channel` (`duplicate`: already done by an
    /// earlier attempt) and passes `outcome` on.
    fn count_delivery(
        &self,
        channel: &'static str,
        duplicate: bool,
        outcome: Result<()>,
    ) -> Result<()> {
        use crate::metrics::DeliveryOutcome;
        let counted = match (&outcome, duplicate) {
            (Err(_), _) => DeliveryOutcome::Failed,
            (Ok(()), true) => DeliveryOutcome::Duplicate,
            (Ok(()), false) => DeliveryOutcome::Delivered,
        };
        self.inner.counters.delivery(channel, counted);
        outcome
    }

    /// The operational state for metrics, read now: open incidents by priority
    /// and status (one count per pair), breached open incidents, the SLA
    /// monitor's lag, the outbox backlog and its oldest entry's age, the queue's
    /// jobs by state, and this engine's counters. For the operator's scraper;
    /// it carries no incident data, so it takes no principal (the HTTP layer
    /// guards it with its own token).
    pub async fn operations(&self) -> Result<crate::metrics::Operations> {
        let store = &self.inner.store;
        let open: Vec<Status> = Status::ALL
            .iter()
            .copied()
            .filter(|s| !s.is_done())
            .collect();
        let mut open_incidents = Vec::with_capacity(Priority::ALL.len() * open.len());
        for &priority in Priority::ALL {
            for &status in &open {
                let filter = IncidentFilter {
                    status: vec![status],
                    priority: vec![priority],
                    ..IncidentFilter::default()
                };
                open_incidents.push((priority, status, store.count_incidents(&filter).await?));
            }
        }
        let open_breached = store
            .count_incidents(&IncidentFilter {
                status: open,
                sla_breached: Some(true),
                ..IncidentFilter::default()
            })
            .await?;
        let now = self.now();
        let behind = |t: Option<Timestamp>| {
            t.and_then(|t| (now - t).to_std().ok())
                .unwrap_or(Duration::ZERO)
        };
        let sla_monitor_lag = behind(store.next_due_at().await?);
        let outbox_pending = store.pending_outbox().await?;
        let outbox_oldest_age = behind(store.oldest_pending_outbox().await?);
        let queue = self.inner.queue.stats().await?;
        Ok(crate::metrics::Operations {
            open_incidents,
            open_breached,
            sla_monitor_lag,
            outbox_pending,
            outbox_oldest_age,
            queue,
            counters: self.inner.counters.snapshot(),
        })
    }

    /// One retention step (SPEC §8): removes up to 1,000 delivered outbox rows
    /// whose last publication is older than `older_than`, with their channel
    /// receipts. Undelivered rows and the audit log are never touched. Safe on
    /// any number of nodes at once.
    pub async fn retention_step(&self, older_than: Duration) -> Result<crate::ports::Pruned> {
        let before = chrono::Duration::from_std(older_than)
            .ok()
            .and_then(|d| self.now().checked_sub_signed(d))
            .ok_or_else(|| Error::config("retention", "the age is too large"))?;
        let pruned = self
            .inner
            .store
            .prune_delivered(before, RETENTION_BATCH)
            .await?;
        self.inner.counters.pruned(pruned);
        Ok(pruned)
    }

    /// Runs retention until `shutdown` turns true: steps until nothing old is
    /// left, then waits `every`. A step in progress finishes before it returns.
    pub async fn run_retention(
        &self,
        older_than: Duration,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        while !*shutdown.borrow() {
            match self.retention_step(older_than).await {
                Ok(p) if p.outbox >= u64::from(RETENTION_BATCH) => continue,
                Ok(p) if p.outbox > 0 => {
                    debug!(
                        outbox = p.outbox,
                        receipts = p.receipts,
                        "retention pruned delivered rows"
                    )
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "retention step failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
