//! Cancel-safety of the write path: a commit whose caller stops waiting (an
//! HTTP client that goes away drops its request's future at whatever `.await`
//! it is in) is committed whole or not at all, and leaves nothing behind that
//! later work could run inside.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::model::{
    Actor, AuditAction, AuditEntry, AuditFilter, Incident, IncidentId, Notification,
    NotificationIntent, NotificationType, PageRequest, Role, Timestamp, UserId,
};
use crate::ports::{Change, IncidentWrite, Store, UserWrite};

use super::store::{at, incident, t0, user};

/// A small deterministic generator (xorshift64*), seeded per run and printed,
/// so that a failing run can be told apart from a flaky one.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
        eprintln!("dropped_commits_are_whole: seed {seed:#x}");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Runs `fut` and drops it at a random point: after a random time of up to
/// 4 ms, or after a random number (1..=8) of polls with a yield between them
/// (which cuts it at its first few `.await`s: taking a connection, `BEGIN`,
/// the first statements).
async fn drop_somewhere<F: Future>(rng: &mut Rng, fut: F) {
    if rng.below(2) == 0 {
        let _ = tokio::time::timeout(Duration::from_micros(rng.below(4_000)), fut).await;
    } else {
        let polls = 1 + rng.below(8);
        let mut fut = std::pin::pin!(fut);
        for _ in 0..polls {
            if futures::poll!(fut.as_mut()).is_ready() {
                return;
            }
            tokio::task::yield_now().await;
        }
    }
}

fn entry(action: AuditAction, target: IncidentId, at: Timestamp) -> AuditEntry {
    AuditEntry::new(
        action,
        Actor::System,
        Some(target.to_string()),
        format!("{action} on {target}"),
        at,
    )
}

fn intent(key: String, user: UserId, incident: IncidentId, at: Timestamp) -> NotificationIntent {
    NotificationIntent {
        message: format!("message {key}"),
        key,
        user,
        kind: NotificationType::Info,
        incident_id: Some(incident),
        created_at: at,
    }
}

/// The next version of `current`: the update, two audit entries
/// (`INCIDENT_UPDATED`, `STATUS_CHANGED`) and one intent keyed by the version
/// it makes, so that a present version `v` means exactly `v - 1` of each.
fn update_of(current: &Incident, user: UserId, now: Timestamp) -> Change {
    let mut after = current.clone();
    after.version = current.version + 1;
    after.title = format!("cancel v{}", after.version);
    after.updated_at = now;
    let id = current.id;
    Change {
        incident: Some(IncidentWrite::Update {
            incident: after.clone(),
            expected_version: current.version,
        }),
        audit: vec![
            entry(AuditAction::IncidentUpdated, id, now),
            entry(AuditAction::StatusChanged, id, now),
        ],
        outbox: vec![intent(format!("{id}/v{}", after.version), user, id, now)],
        ..Change::default()
    }
}

/// A new incident with its `INCIDENT_CREATED` entry and one intent.
fn insert_of(i: &Incident, user: UserId) -> Change {
    Change {
        incident: Some(IncidentWrite::Insert(i.clone())),
        audit: vec![entry(AuditAction::IncidentCreated, i.id, i.created_at)],
        outbox: vec![intent(
            format!("{}/created", i.id),
            user,
            i.id,
            i.created_at,
        )],
        ..Change::default()
    }
}

/// Every audit entry whose target is the incident, newest first, across pages.
pub async fn audit_of(store: &dyn Store, id: IncidentId) -> Vec<AuditEntry> {
    let filter = AuditFilter {
        target: Some(id.to_string()),
        ..AuditFilter::default()
    };
    let mut out = Vec::new();
    let mut page = PageRequest::first(200);
    loop {
        let p = store.list_audit(&filter, page).await.expect("audit");
        out.extend(p.items);
        match p.next {
            Some(c) => page.cursor = Some(c),
            None => return out,
        }
    }
}

async fn current(store: &dyn Store, id: IncidentId) -> Incident {
    store
        .get_incident(id)
        .await
        .expect("get")
        .expect("an incident only awaited commits touch is there")
}

/// What is wrong with the stored state, if anything: a version without its
/// audit entries (or audit entries without their version), a dropped insert
/// present in part.
async fn inconsistencies(
    store: &dyn Store,
    updated: &[IncidentId],
    inserted: &[IncidentId],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for id in updated {
        let v = current(store, *id).await.version;
        let log = audit_of(store, *id).await;
        let count = |a: AuditAction| log.iter().filter(|e| e.action == a).count() as i64;
        let (updates, statuses) = (
            count(AuditAction::IncidentUpdated),
            count(AuditAction::StatusChanged),
        );
        if updates != v - 1 || statuses != v - 1 || log.len() as i64 != 2 * (v - 1) {
            wrong.push(format!(
                "incident {id} is at version {v} but has {updates} INCIDENT_UPDATED and \
                 {statuses} STATUS_CHANGED entries ({} in all)",
                log.len()
            ));
        }
    }
    for id in inserted {
        let present = store.get_incident(*id).await.expect("get").is_some();
        let log = audit_of(store, *id).await;
        if log.len() != usize::from(present) {
            wrong.push(format!(
                "dropped insert {id}: incident {} with {} audit entries",
                if present { "present" } else { "absent" },
                log.len()
            ));
        }
    }
    wrong
}

/// Many commits whose futures are dropped at random points (by a timeout of
/// up to 4 ms or after a few polls), interleaved with commits that are awaited,
/// plain writes outside any change (in-app notifications) and failing commits.
/// Afterwards every dropped change is entirely present or entirely absent (an
/// incident at version `v` has exactly `v - 1` update entries of each kind and
/// the `v - 1` intents of its versions; a dropped insert is there with its
/// entry and intent, or none of them is), no intent or entry of an absent change
/// is anywhere, and the awaited work all stands: nothing was run inside a
/// transaction a dropped commit left open (where it would be rolled back or
/// never committed).
pub async fn dropped_commits_are_whole(store: &dyn Store) {
    const ROUNDS: usize = 240;
    let mut rng = Rng::new();
    let reporter = user("rep", Role::User);
    store
        .commit(Change {
            user: Some(UserWrite::Insert(reporter.clone())),
            ..Change::default()
        })
        .await
        .expect("add user");
    let uid = reporter.id;
    // Incidents only dropped commits update, and ones only awaited commits do.
    let mut dropped: Vec<IncidentId> = Vec::new();
    let mut steady: Vec<IncidentId> = Vec::new();
    for n in 0..12 {
        let i = incident(uid, &format!("cancel {n}"), at(n));
        store
            .commit(Change {
                incident: Some(IncidentWrite::Insert(i.clone())),
                ..Change::default()
            })
            .await
            .expect("add incident");
        if n < 8 {
            dropped.push(i.id);
        } else {
            steady.push(i.id);
        }
    }
    let mut inserted: Vec<IncidentId> = Vec::new();
    let mut steady_version: HashMap<IncidentId, i64> = steady.iter().map(|id| (*id, 1)).collect();
    let mut notified: Vec<String> = Vec::new();
    let mut conflicts = 0;
    for round in 0..ROUNDS {
        let now = at(1_000 + round as i64);
        // A dropped commit: mostly updates (one transaction of their own on the
        // SQL stores), some inserts (PostgreSQL batches those).
        if rng.below(4) == 0 {
            let i = incident(uid, &format!("dropped insert {round}"), now);
            inserted.push(i.id);
            drop_somewhere(&mut rng, store.commit(insert_of(&i, uid))).await;
        } else {
            let id = dropped[rng.below(dropped.len() as u64) as usize];
            // It may lag behind a dropped commit still running: then this one
            // is stale and fails whole, which is as good as any.
            let before = current(store, id).await;
            drop_somewhere(&mut rng, store.commit(update_of(&before, uid, now))).await;
        }
        // Awaited work right after, on the same pool.
        let id = steady[round % steady.len()];
        let before = current(store, id).await;
        assert_eq!(
            before.version, steady_version[&id],
            "round {round}: an awaited commit on incident {id} is not visible"
        );
        store
            .commit(update_of(&before, uid, now))
            .await
            .unwrap_or_else(|e| panic!("round {round}: an awaited commit failed: {e}"));
        steady_version.insert(id, before.version + 1);
        let key = format!("cancel-note-{round}");
        let note = Notification::from_intent(&intent(key.clone(), uid, id, now), now);
        assert!(
            store.insert_notification(&note).await.expect("notify"),
            "round {round}: a fresh notification key"
        );
        notified.push(key);
        if round % 3 == 0 {
            // A failing change (stale version): it must fail alone, taking
            // nothing else with it.
            let mut stale = before.clone();
            stale.version -= 1;
            let r = store.commit(update_of(&stale, uid, now)).await;
            assert!(
                matches!(r, Err(Error::Conflict { .. })),
                "round {round}: a stale update must be a Conflict, got {r:?}"
            );
            conflicts += 1;
        }
    }
    assert!(conflicts > 0);

    // Dropped commits may still be finishing where they were handed over to;
    // give them a bounded time to, then the state must be whole.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut updated = dropped.clone();
    updated.extend(&steady);
    loop {
        let wrong = inconsistencies(store, &updated, &inserted).await;
        if wrong.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "changes are present in part after their commits were dropped:\n{}",
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The awaited work all stands.
    for id in &steady {
        assert_eq!(current(store, *id).await.version, steady_version[id]);
    }
    let mut listed = BTreeSet::new();
    let mut page = PageRequest::first(200);
    loop {
        let p = store.list_notifications(uid, page).await.expect("list");
        listed.extend(p.items.into_iter().map(|n| n.key));
        match p.next {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    let want: BTreeSet<String> = notified.iter().cloned().collect();
    let lost: Vec<&String> = want.difference(&listed).collect();
    assert!(
        lost.is_empty(),
        "{} of {} notifications written after dropped commits are not there \
         (run inside a transaction left open?): {lost:?}",
        lost.len(),
        want.len()
    );

    // Exactly the intents of the changes present, each once.
    let mut expected = BTreeSet::new();
    for id in &updated {
        for v in 2..=current(store, *id).await.version {
            expected.insert(format!("{id}/v{v}"));
        }
    }
    for id in &inserted {
        if store.get_incident(*id).await.expect("get").is_some() {
            expected.insert(format!("{id}/created"));
        }
    }
    let far = crate::model::plus_ms(t0(), 10 * 365 * 86_400_000);
    let mut outbox = Vec::new();
    loop {
        let batch = store
            .claim_outbox(far, Duration::from_secs(3_600), 1_000)
            .await
            .expect("claim");
        if batch.is_empty() {
            break;
        }
        outbox.extend(batch.into_iter().map(|e| e.intent.key));
    }
    let claimed: BTreeSet<String> = outbox.iter().cloned().collect();
    assert_eq!(
        outbox.len(),
        claimed.len(),
        "an intent was in the outbox twice"
    );
    let missing: Vec<&String> = expected.difference(&claimed).collect();
    let orphans: Vec<&String> = claimed.difference(&expected).collect();
    assert!(
        missing.is_empty() && orphans.is_empty(),
        "outbox: {} intents of present changes missing {missing:?}, {} of absent changes \
         present {orphans:?}",
        missing.len(),
        orphans.len()
    );
    let present_inserts = expected.iter().filter(|k| k.ends_with("/created")).count();
    eprintln!(
        "dropped_commits_are_whole: {} dropped inserts ({present_inserts} landed), \
         dropped updates reached versions {:?}",
        inserted.len(),
        {
            let mut vs = Vec::new();
            for id in &dropped {
                vs.push(current(store, *id).await.version);
            }
            vs
        }
    );
}

/// A commit dropped after its first poll (the change handed over, the caller
/// gone) still moves the store's [generation](crate::ports::ChangeStore::generation)
/// once it lands, so that the engine's cached reads (a principal's role, list
/// pages) do not outlive it: a role change whose request was dropped applies to
/// live tokens like any other. (Stores declared without a generation run
/// [`reads_through_without_generation`](super::store::reads_through_without_generation)
/// instead.)
pub async fn dropped_commits_move_generation(store: &dyn Store) {
    let before = super::store::expect_generation(store).await;
    let u = user("gen", Role::User);
    store
        .commit(Change {
            user: Some(UserWrite::Insert(u.clone())),
            ..Change::default()
        })
        .await
        .expect("add user");
    let added = store.generation().expect("live");
    assert!(added.users > before.users, "an awaited commit moves it");
    {
        let change = store.commit(Change {
            user: Some(UserWrite::SetRole {
                id: u.id,
                role: Role::Engineer,
            }),
            ..Change::default()
        });
        let mut change = std::pin::pin!(change);
        // One poll hands the change over; then the caller goes away.
        let _ = futures::poll!(change.as_mut());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let role = store.get_user(u.id).await.expect("get").map(|u| u.role);
        let moved = store.generation().is_some_and(|g| g.users > added.users);
        if role == Some(Role::Engineer) && moved {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a dropped commit: role {role:?}, generation moved: {moved}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
