//! The engine when the store fails a commit (testkit `FaultyStore` around the
//! memory store): every use case leaves nothing half-done (no incident without
//! its audit entries, no audit entry or outbox row without its change, versions
//! unchanged), returns the store's `Backend` error, and leaves no poisoned read
//! cache (a read after the failure shows the state before it; the next write
//! succeeds and shows at once). A commit that lands but whose answer is lost
//! shows at once too. A failed SLA step is retried after its claim's lease and
//! recorded once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{World, world_on};

use imas_core::engine::{IncidentPatch, NewIncident, NewUser};
use imas_core::memory::MemoryStore;
use imas_core::model::{
    AuditAction, AuditEntry, AuditFilter, Incident, IncidentFilter, NotificationType, PageRequest,
    Priority, Role, Status, User,
};
use imas_core::ports::{AuditStore, ManualClock, NotificationStore};
use imas_core::testkit::fault::{Call, Fault, FaultyStore};
use imas_core::testkit::store::t0;
use imas_core::{EngineConfig, Error, Principal};

type Rig = World<FaultyStore>;

fn rig() -> Rig {
    world_on(
        Arc::new(FaultyStore::new(Arc::new(MemoryStore::new()))),
        ManualClock::new(t0()),
        EngineConfig::default(),
    )
}

/// What the store holds, read from the wrapped store (no fault, no cache).
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: Vec<User>,
    incidents: Vec<Incident>,
    audit: Vec<AuditEntry>,
    pending_outbox: u64,
}

impl Rig {
    async fn incident(&self, who: &Principal, title: &str) -> Incident {
        self.engine
            .create_incident(
                who,
                NewIncident {
                    title: title.into(),
                    ..Default::default()
                },
            )
            .await
            .expect("create")
    }

    async fn snapshot(&self) -> Snapshot {
        let s = self.store.inner();
        let mut users = Vec::new();
        for role in [Role::Admin, Role::Engineer, Role::User] {
            users.extend(s.users_with_role(role).await.expect("users"));
        }
        Snapshot {
            users,
            incidents: s
                .list_incidents(&IncidentFilter::default(), PageRequest::first(500))
                .await
                .expect("incidents")
                .items,
            audit: s
                .list_audit(&AuditFilter::default(), PageRequest::first(500))
                .await
                .expect("audit")
                .items,
            pending_outbox: s.pending_outbox().await.expect("outbox"),
        }
    }

    /// Titles and versions as the engine lists them (through its cache).
    async fn listed(&self, who: &Principal) -> Vec<(String, i64)> {
        self.engine
            .list_incidents(who, &IncidentFilter::default(), PageRequest::first(50))
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|i| (i.title, i.version))
            .collect()
    }
}

fn assert_injected<T: std::fmt::Debug>(what: &str, r: Result<T, Error>) {
    match r {
        Err(e) => assert!(
            matches!(e, Error::Backend { .. }) && FaultyStore::is_injected(&e),
            "{what}: the store's Backend error, got {e:?}"
        ),
        Ok(v) => panic!("{what}: succeeded although its commit failed: {v:?}"),
    }
}

/// Each write use case, run once with its commit failing, then once more.
#[derive(Debug, Clone, Copy)]
enum Op {
    Register,
    Create,
    Update,
    Acknowledge,
    AssignSla,
    Escalate,
    Delete,
    ChangeRole,
    Login,
}

const OPS: [Op; 9] = [
    Op::Register,
    Op::Create,
    Op::Update,
    Op::Acknowledge,
    Op::AssignSla,
    Op::Escalate,
    Op::Delete,
    Op::ChangeRole,
    Op::Login,
];

async fn run(
    r: &Rig,
    op: Op,
    root: &Principal,
    eng: &Principal,
    target: &Incident,
    attempt: u32,
) -> Result<(), Error> {
    let e = &r.engine;
    match op {
        Op::Register => e
            .register(NewUser {
                name: "New".into(),
                username: format!("new{attempt}"),
                email: format!("new{attempt}@example.com"),
                password: "correct horse battery".into(),
            })
            .await
            .map(drop),
        Op::Create => e
            .create_incident(
                root,
                NewIncident {
                    title: format!("created {attempt}"),
                    priority: Some(Priority::High),
                    assigned_to: Some(eng.id),
                    ..Default::default()
                },
            )
            .await
            .map(drop),
        Op::Update => e
            .update_incident(
                root,
                target.id,
                IncidentPatch {
                    title: Some(format!("renamed {attempt}")),
                    assigned_to: Some(Some(eng.id)),
                    ..Default::default()
                },
                Some(target.version),
            )
            .await
            .map(drop),
        Op::Acknowledge => e
            .change_status(root, target.id, Status::Acknowledged)
            .await
            .map(drop),
        Op::AssignSla => e
            .assign_sla(root, target.id, Priority::Critical)
            .await
            .map(drop),
        Op::Escalate => e
            .escalate_manually(root, target.id, Some("by hand".into()))
            .await
            .map(drop),
        Op::Delete => e.delete_incident(root, target.id).await,
        Op::ChangeRole => e.change_role(root, eng.id, Role::Admin).await.map(drop),
        Op::Login => e.login("eng", "correct horse battery").await.map(drop),
    }
}

#[tokio::test]
async fn every_failed_write_leaves_the_store_as_it_was() {
    for op in OPS {
        let r = rig();
        let root = r.root().await;
        let (eng, _) = r.user_by(&root, "eng", Role::Engineer).await;
        let target = r.incident(&root, "target").await;
        let before = r.snapshot().await;
        let listed = r.listed(&root).await;

        r.store.fail_nth_commit(1, Fault::Before);
        assert_injected(
            &format!("{op:?}"),
            run(&r, op, &root, &eng, &target, 1).await,
        );
        assert_eq!(r.store.injected(), 1, "{op:?}: the fault struck");
        assert_eq!(
            r.snapshot().await,
            before,
            "{op:?}: nothing of a failed change is in the store"
        );
        assert_eq!(
            r.engine
                .get_incident(&root, target.id)
                .await
                .expect("get")
                .version,
            target.version,
            "{op:?}: the version did not move"
        );
        assert_eq!(r.listed(&root).await, listed, "{op:?}: lists as before");
        let relayed = r.engine.flush_notifications().await.expect("flush");
        assert_eq!(relayed.jobs, 0, "{op:?}: nothing to notify: {relayed:?}");

        // The same operation again succeeds, and shows at once.
        run(&r, op, &root, &eng, &target, 2)
            .await
            .unwrap_or_else(|e| panic!("{op:?} after the fault: {e}"));
        let after = r.snapshot().await;
        assert_ne!(after, before, "{op:?}: the second attempt wrote");
        assert!(
            after.audit.len() > before.audit.len(),
            "{op:?}: and audited"
        );
        let now = r.listed(&root).await;
        let expect_list_change = !matches!(op, Op::Register | Op::ChangeRole | Op::Login);
        assert_eq!(
            now != listed,
            expect_list_change,
            "{op:?}: the list shows the second attempt at once: {listed:?} -> {now:?}"
        );
    }
}

/// The principal cache: a failed role change leaves the caller's role as it
/// was; the next one applies to the live token at once.
#[tokio::test]
async fn a_failed_role_change_does_not_stick_in_the_cache() {
    let r = rig();
    let root = r.root().await;
    let (member, token) = r.user_by(&root, "member", Role::User).await;
    for _ in 0..2 {
        assert_eq!(
            r.engine.authenticate(&token).await.expect("auth").role,
            Role::User
        );
    }
    let reads = r.store.calls(Call::GetUser);
    r.engine.authenticate(&token).await.expect("auth");
    assert_eq!(
        r.store.calls(Call::GetUser),
        reads,
        "the role is cached (otherwise this test checks nothing)"
    );
    r.store.fail_nth_commit(1, Fault::Before);
    assert_injected(
        "role change",
        r.engine.change_role(&root, member.id, Role::Engineer).await,
    );
    assert_eq!(
        r.engine.authenticate(&token).await.expect("auth").role,
        Role::User,
        "the failed change is not served"
    );
    r.engine
        .change_role(&root, member.id, Role::Engineer)
        .await
        .expect("role");
    assert_eq!(
        r.engine.authenticate(&token).await.expect("auth").role,
        Role::Engineer,
        "the successful one is, at once"
    );
}

/// A commit that lands but whose answer is lost: the caller gets the error,
/// and every read shows the change at once (the cache holds nothing from
/// before it).
#[tokio::test]
async fn a_commit_whose_answer_is_lost_shows_at_once() {
    let r = rig();
    let root = r.root().await;
    let (member, token) = r.user_by(&root, "member", Role::User).await;
    let first = r.incident(&root, "first").await;
    assert_eq!(r.listed(&root).await, [("first".to_string(), 1)]);
    assert_eq!(r.listed(&root).await, [("first".to_string(), 1)]);
    r.engine.authenticate(&token).await.expect("auth");

    r.store.fail_nth_commit(1, Fault::After);
    assert_injected(
        "update",
        r.engine
            .update_incident(
                &root,
                first.id,
                IncidentPatch {
                    title: Some("renamed".into()),
                    ..Default::default()
                },
                None,
            )
            .await,
    );
    assert_eq!(
        r.listed(&root).await,
        [("renamed".to_string(), 2)],
        "the list shows what the store holds"
    );
    r.store.fail_nth_commit(1, Fault::After);
    assert_injected(
        "role change",
        r.engine.change_role(&root, member.id, Role::Engineer).await,
    );
    assert_eq!(
        r.engine.authenticate(&token).await.expect("auth").role,
        Role::Engineer,
        "the role the store holds"
    );
}

/// The SLA sweep: a breach whose commit fails is not recorded; the claim's
/// lease runs out, the next sweep records it, exactly once.
#[tokio::test]
async fn a_failed_breach_is_recorded_once_after_the_lease() {
    let r = rig();
    let root = r.root().await;
    let (eng, _) = r.user_by(&root, "eng", Role::Engineer).await;
    let incident = r
        .engine
        .create_incident(
            &root,
            NewIncident {
                title: "db down".into(),
                priority: Some(Priority::Critical),
                assigned_to: Some(eng.id),
                ..Default::default()
            },
        )
        .await
        .expect("create");
    // Acknowledged, so that the breach is the only step due.
    r.engine
        .change_status(&root, incident.id, Status::Acknowledged)
        .await
        .expect("ack");
    r.engine.sweep_all().await.expect("sweep");
    r.engine.flush_notifications().await.expect("flush");
    r.clock.advance(Duration::from_secs(3_601));
    let before = r.snapshot().await;

    r.store.fail_nth_commit(1, Fault::Before);
    assert_injected("sweep", r.engine.sweep_step().await);
    assert_eq!(r.store.injected(), 1);
    let held = r.snapshot().await;
    assert_eq!(
        (&held.audit, held.pending_outbox),
        (&before.audit, before.pending_outbox),
        "no breach audit, no notification intent"
    );
    let now = r
        .engine
        .get_incident(&root, incident.id)
        .await
        .expect("get");
    assert!(!now.sla_breached, "not recorded: {now:?}");
    assert_eq!(
        r.engine.sweep_all().await.expect("sweep").claimed,
        0,
        "claimed until the lease runs out"
    );

    r.clock
        .advance(EngineConfig::default().claim_lease + Duration::from_millis(1));
    let report = r.engine.sweep_all().await.expect("sweep");
    assert_eq!(report.breaches, 1, "{report:?}");
    r.engine.flush_notifications().await.expect("flush");
    r.clock.advance(Duration::from_secs(60));
    r.engine.sweep_all().await.expect("sweep");
    let breaches = r
        .store
        .list_audit(
            &AuditFilter {
                action: Some(AuditAction::SlaBreach),
                ..Default::default()
            },
            PageRequest::first(10),
        )
        .await
        .expect("audit");
    assert_eq!(breaches.items.len(), 1, "recorded once");
    let notes = r
        .store
        .list_notifications(eng.id, PageRequest::first(50))
        .await
        .expect("notes");
    assert_eq!(
        notes
            .items
            .iter()
            .filter(|n| n.kind == NotificationType::Escalation)
            .count(),
        1,
        "notified once"
    );
}

#[tokio::test]
async fn one_failed_sweep_commit_does_not_hold_back_the_rest_of_the_batch() {
    let r = rig();
    let root = r.root().await;
    let mut ids = Vec::new();
    for title in ["db down", "cache down"] {
        let incident = r
            .engine
            .create_incident(
                &root,
                NewIncident {
                    title: title.into(),
                    priority: Some(Priority::Critical),
                    ..Default::default()
                },
            )
            .await
            .expect("create");
        r.engine
            .change_status(&root, incident.id, Status::Acknowledged)
            .await
            .expect("ack");
        ids.push(incident.id);
    }
    r.engine.sweep_all().await.expect("sweep");
    r.clock.advance(Duration::from_secs(3_601));

    r.store.fail_nth_commit(1, Fault::Before);
    assert_injected("sweep", r.engine.sweep_step().await);
    let mut breached = Vec::new();
    for id in &ids {
        breached.push(
            r.engine
                .get_incident(&root, *id)
                .await
                .expect("get")
                .sla_breached,
        );
    }
    breached.sort_unstable();
    assert_eq!(
        breached,
        [false, true],
        "the step failed for one incident and was committed for the other"
    );
    r.clock
        .advance(EngineConfig::default().claim_lease + Duration::from_millis(1));
    assert_eq!(r.engine.sweep_all().await.expect("sweep").breaches, 1);
}

#[tokio::test]
async fn a_sign_in_whose_commit_failed_does_not_forget_the_failures_before_it() {
    let r = rig();
    r.root().await;
    for _ in 0..4 {
        assert!(matches!(
            r.engine.login("root", "wrong password").await,
            Err(Error::Unauthorized { .. })
        ));
    }
    r.store.fail_nth_commit(1, Fault::Before);
    assert_injected("login", r.engine.login("root", "root password 123").await);
    assert!(matches!(
        r.engine.login("root", "wrong password").await,
        Err(Error::Unauthorized { .. })
    ));
    assert!(
        matches!(
            r.engine.login("root", "root password 123").await,
            Err(Error::RateLimited { .. })
        ),
        "five failures in a row: the username is held back"
    );
}
