//! Loads benchmark incidents the way production writes them: every incident is
//! created through [`Engine::create_incident`] (one `Change` of incident row,
//! `INCIDENT_CREATED` audit entry and, when it is assigned to someone else, the
//! assignment's outbox intent), and the ones that move on are moved through
//! [`Engine::change_status`] (an update with its audit entry and notifications).
//! The engine's clock is a [`ManualClock`] walked across the 90 days before the
//! load, so creation times spread as a real history does. With `deliver`, the
//! outbox is then relayed and delivered (`Engine::flush_notifications`): the
//! notifications table filled and the outbox rows marked delivered, as a running
//! server leaves them.
//!
//! Shared by `store_scale` and `report_bench` (`#[path]` module; each uses a
//! part of what it returns).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use imas::engine::{NewIncident, NewUser};
use imas::model::{Priority, Role, Status, Timestamp, UserId, from_millis};
use imas::ports::{ManualClock, Store};
use imas::sla::SlaPolicy;
use imas::{Engine, EngineConfig, Principal};

/// The bootstrap admin the loader creates (the report benchmark signs in as it).
pub const ADMIN: (&str, &str) = ("bench", "bench password of the load");

const WORDS: &[&str] = &[
    "database",
    "latency",
    "timeout",
    "checkout",
    "payment",
    "login",
    "cache",
    "disk",
    "memory",
    "queue",
    "worker",
    "deploy",
    "certificate",
    "network",
    "replica",
    "index",
    "dashboard",
    "webhook",
    "email",
    "search",
];

/// What to load.
#[derive(Debug, Clone)]
pub struct Shape {
    /// How many incidents.
    pub incidents: usize,
    /// Every `due_every`-th incident is critical and left open: due for the SLA
    /// monitor at the end of the load (its 15-minute response target passed).
    /// The other priorities get 365-day targets, so no other incident is due.
    /// `None`: no critical incident, nothing due.
    pub due_every: Option<usize>,
    /// A word put in the title of exactly this many incidents (spread over the
    /// history), for full-text search.
    pub rare: Option<(&'static str, usize)>,
    /// Relay and deliver the outbox at the end.
    pub deliver: bool,
}

/// What was loaded.
#[derive(Debug)]
pub struct Loaded {
    /// The engine the incidents went through (its clock stopped at `now`).
    pub engine: Engine,
    /// The instant the load ends at (after every creation).
    pub now: Timestamp,
    /// Incidents due at `now`.
    pub due: usize,
    /// Incidents in each status.
    pub by_status: Vec<(Status, usize)>,
}

fn policy() -> Result<SlaPolicy, imas::Error> {
    let year = Duration::from_secs(365 * 86_400);
    let mut p = SlaPolicy::default();
    for pr in [Priority::Low, Priority::Medium, Priority::High] {
        p = p.with_resolution(pr, year)?.with_response(pr, year)?;
    }
    Ok(p)
}

/// The status incident `k` ends in (critical ones stay open).
fn status_of(k: usize) -> Status {
    match k % 10 {
        1 | 2 => Status::Resolved,
        3 => Status::Closed,
        4 => Status::Acknowledged,
        5 => Status::InProgress,
        _ => Status::Open,
    }
}

/// A `postgres://` URL with session settings added (`options[name]=value`
/// parameters, which sqlx sends in the startup packet).
pub fn with_options(url: &str, options: &[(&str, &str)]) -> String {
    let mut out = url.to_string();
    for (i, (k, v)) in options.iter().enumerate() {
        let sep = if i == 0 && !url.contains('?') {
            '?'
        } else {
            '&'
        };
        out.push_str(&format!("{sep}options[{k}]={v}"));
    }
    out
}

/// Loads `shape` into `store` through an engine; see the module documentation.
pub async fn load(store: Arc<dyn Store>, shape: &Shape) -> Result<Loaded, imas::Error> {
    let n = shape.incidents;
    let begun = std::time::Instant::now();
    let end = imas::model::truncate_millis(chrono::Utc::now());
    let day = 86_400_000i64;
    let start = end.timestamp_millis() - 91 * day;
    let clock = ManualClock::new(from_millis(start));
    let config = EngineConfig {
        sla: policy()?,
        ..EngineConfig::default()
    };
    let engine = Engine::builder(store)
        .clock(Arc::new(clock.clone()))
        .config(config)
        .build()?;
    engine
        .ensure_admin(ADMIN.0, ADMIN.1, "bench@example.com")
        .await?;
    let admin_user = engine
        .store()
        .user_by_username(ADMIN.0)
        .await?
        .ok_or_else(|| imas::Error::backend("load", "the admin was not created"))?;
    let admin = Principal {
        id: admin_user.id,
        role: Role::Admin,
    };
    // Four engineers who report and are assigned incidents, with the admin.
    let mut people = vec![admin];
    for e in 0..4 {
        let (user, _) = engine
            .register(NewUser {
                name: format!("Engineer {e}"),
                username: format!("engineer{e}"),
                email: format!("engineer{e}@example.com"),
                password: "an engineer's password".into(),
            })
            .await?;
        engine.change_role(&admin, user.id, Role::Engineer).await?;
        people.push(Principal {
            id: user.id,
            role: Role::Engineer,
        });
    }
    let assignees: Vec<UserId> = people.iter().map(|p| p.id).collect();
    let users = begun.elapsed();
    let (mut creating, mut moving) = (Duration::ZERO, Duration::ZERO);

    let rare_every = shape.rare.map(|(_, hits)| (n / hits.max(1)).max(1));
    let is_due = |k: usize| shape.due_every.is_some_and(|d| k.is_multiple_of(d));
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let w = |s: u64| WORDS[(s % WORDS.len() as u64) as usize];

    // Chunks of 256 (the PostgreSQL store's batch) created at one instant each,
    // concurrently; the chunk's status changes ten minutes later.
    const CHUNK: usize = 256;
    let chunks = n.div_ceil(CHUNK).max(1) as i64;
    let step = 90 * day / chunks;
    let mut by_status = std::collections::BTreeMap::<&'static str, (Status, usize)>::new();
    let mut due = 0usize;
    for (c, first) in (0..n).step_by(CHUNK).enumerate() {
        let created = start + c as i64 * step;
        clock.set(from_millis(created));
        let ks: Vec<usize> = (first..n.min(first + CHUNK)).collect();
        let inputs: Vec<(usize, Principal, NewIncident)> = ks
            .iter()
            .map(|&k| {
                let r = next();
                let mut title = format!("{} {} on node-{}", w(r), w(r >> 8), r % 997);
                if let (Some((word, hits)), Some(every)) = (shape.rare, rare_every)
                    && k.is_multiple_of(every)
                    && k / every < hits
                {
                    title.push(' ');
                    title.push_str(word);
                }
                let priority = if is_due(k) {
                    Priority::Critical
                } else {
                    [Priority::Low, Priority::Medium, Priority::High][(r >> 40) as usize % 3]
                };
                let input = NewIncident {
                    title,
                    description: Some(format!(
                        "{} {} {} observed by monitoring",
                        w(r >> 16),
                        w(r >> 24),
                        w(r >> 32)
                    )),
                    priority: Some(priority),
                    assigned_to: (k % 3 != 0).then(|| assignees[(k / 3) % assignees.len()]),
                    ..NewIncident::default()
                };
                (k, people[k % people.len()], input)
            })
            .collect();
        let t = std::time::Instant::now();
        let made = join_all(
            inputs
                .iter()
                .map(|(_, who, input)| engine.create_incident(who, input.clone())),
        )
        .await;
        creating += t.elapsed();
        let t = std::time::Instant::now();
        clock.set(from_millis(created + 600_000));
        let mut moves = Vec::new();
        for ((k, _, _), made) in inputs.iter().zip(made) {
            let incident = made?;
            let status = if is_due(*k) {
                due += 1;
                Status::Open
            } else {
                status_of(*k)
            };
            by_status.entry(status.as_str()).or_insert((status, 0)).1 += 1;
            if status != Status::Open {
                moves.push((incident.id, status));
            }
        }
        for moved in join_all(
            moves
                .iter()
                .map(|(id, status)| engine.change_status(&admin, *id, *status)),
        )
        .await
        {
            moved?;
        }
        moving += t.elapsed();
    }
    clock.set(end);
    let t = std::time::Instant::now();
    if shape.deliver {
        // Four relays-and-workers at once, as four server nodes would (claims
        // are leased, so they never take the same entry).
        for flushed in join_all((0..4).map(|_| engine.flush_notifications())).await {
            flushed?;
        }
    }
    eprintln!(
        "load: users {users:.1?}, creating {creating:.1?}, status changes {moving:.1?}, delivering {:.1?}",
        t.elapsed()
    );
    Ok(Loaded {
        engine,
        now: end,
        due,
        by_status: by_status.into_values().collect(),
    })
}
