//! SPEC §8 in the engine, on a manual clock: the operational snapshot behind
//! `/metrics` (open incidents by priority and status, SLA monitor lag, outbox
//! backlog and age, breach and delivery counters) and retention of delivered
//! outbox rows and channel receipts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{World, mins};
use imas_core::engine::{DEFAULT_RETENTION, NewIncident};
use imas_core::metrics::{DeliveryOutcome, IN_APP, Operations};
use imas_core::model::{AuditFilter, Notification, PageRequest, Priority, Role, Status};
use imas_core::ports::{AuditStore, Channel, IncidentStore, NotificationStore};
use imas_core::{Principal, Result};

/// A channel that counts what it is given and fails while told to.
#[derive(Debug, Default)]
struct Pager {
    sent: AtomicUsize,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Channel for Pager {
    fn name(&self) -> &'static str {
        "pager"
    }
    async fn deliver(
        &self,
        _n: &Notification,
        _: Option<&imas_core::ports::Recipient>,
    ) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(imas_core::Error::backend("pager", "down"));
        }
        self.sent.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn create(w: &World, who: &Principal, priority: Priority, to: Option<Principal>) {
    w.engine
        .create_incident(
            who,
            NewIncident {
                title: format!("{priority} incident"),
                priority: Some(priority),
                assigned_to: to.map(|p| p.id),
                ..Default::default()
            },
        )
        .await
        .expect("create");
}

fn open(ops: &Operations, priority: Priority, status: Status) -> u64 {
    ops.open_incidents
        .iter()
        .find(|(p, s, _)| *p == priority && *s == status)
        .map(|(_, _, n)| *n)
        .expect("every pair is reported")
}

fn delivered(ops: &Operations, channel: &str, outcome: DeliveryOutcome) -> u64 {
    ops.counters
        .deliveries
        .iter()
        .find(|(c, o, _)| *c == channel && *o == outcome)
        .map(|(_, _, n)| *n)
        .expect("every channel and outcome is reported")
}

#[tokio::test]
async fn operations_report_incidents_lag_outbox_and_counters() {
    let pager = Arc::new(Pager::default());
    let w = common::world_with_channel(pager.clone());
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    create(&w, &root, Priority::Critical, Some(eng)).await;
    create(&w, &root, Priority::Low, None).await;
    create(&w, &root, Priority::Low, None).await;

    let ops = w.engine.operations().await.expect("operations");
    assert_eq!(
        ops.open_incidents.len(),
        16,
        "4 priorities x 4 open statuses"
    );
    assert_eq!(open(&ops, Priority::Critical, Status::Open), 1);
    assert_eq!(open(&ops, Priority::Low, Status::Open), 2);
    assert_eq!(open(&ops, Priority::High, Status::Open), 0);
    assert_eq!(ops.open_breached, 0);
    assert_eq!(ops.sla_monitor_lag, Duration::ZERO, "nothing is overdue");
    assert_eq!(ops.outbox_pending, 1, "the assignment notice");
    w.advance(Duration::from_secs(90));
    let ops = w.engine.operations().await.expect("operations");
    assert_eq!(ops.outbox_oldest_age, Duration::from_secs(90));
    assert_eq!(delivered(&ops, "pager", DeliveryOutcome::Delivered), 0);

    w.engine.flush_notifications().await.expect("flush");
    let ops = w.engine.operations().await.expect("operations");
    assert_eq!(ops.outbox_pending, 0);
    assert_eq!(ops.outbox_oldest_age, Duration::ZERO);
    assert_eq!(delivered(&ops, IN_APP, DeliveryOutcome::Delivered), 1);
    assert_eq!(delivered(&ops, "pager", DeliveryOutcome::Delivered), 1);
    assert_eq!(pager.sent.load(Ordering::SeqCst), 1);

    // The monitor falls behind when a due instant passes without a sweep.
    let due = w
        .store
        .next_due_at()
        .await
        .expect("due")
        .expect("a due incident");
    let late = (due - w.engine.now()).to_std().expect("in the future") + Duration::from_secs(5);
    w.advance(late);
    let ops = w.engine.operations().await.expect("operations");
    assert_eq!(ops.sla_monitor_lag, Duration::from_secs(5));
    w.engine.sweep_all().await.expect("sweep");
    let ops = w.engine.operations().await.expect("operations");
    assert_eq!(ops.sla_monitor_lag, Duration::ZERO, "swept: caught up");

    // A critical incident breaches after one hour: counted once, by this engine.
    w.advance(mins(61));
    w.engine.sweep_all().await.expect("sweep");
    w.engine.sweep_all().await.expect("sweep");
    let ops = w.engine.operations().await.expect("operations");
    assert_eq!(ops.counters.breaches, 1);
    assert_eq!(ops.open_breached, 1);

    // A failing channel counts failures; the retry counts the in-app record as
    // a duplicate and the channel as delivered.
    pager.failing.store(true, Ordering::SeqCst);
    let before = w.engine.operations().await.expect("operations");
    let report = w.engine.flush_notifications().await.expect("flush");
    assert!(report.failed > 0, "{report:?}");
    let ops = w.engine.operations().await.expect("operations");
    assert_eq!(
        delivered(&ops, "pager", DeliveryOutcome::Failed)
            - delivered(&before, "pager", DeliveryOutcome::Failed),
        report.failed as u64
    );
    pager.failing.store(false, Ordering::SeqCst);
    w.advance(mins(10));
    w.engine.flush_notifications().await.expect("flush");
    let ops = w.engine.operations().await.expect("operations");
    assert!(delivered(&ops, IN_APP, DeliveryOutcome::Duplicate) >= 1);
    assert_eq!(
        delivered(&ops, "pager", DeliveryOutcome::Delivered),
        pager.sent.load(Ordering::SeqCst) as u64
    );
}

#[tokio::test]
async fn retention_removes_old_deliveries_and_keeps_pending_and_audit() {
    let pager = Arc::new(Pager::default());
    let w = common::world_with_channel(pager.clone());
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    create(&w, &root, Priority::Low, Some(eng)).await;
    w.engine.flush_notifications().await.expect("flush");
    let note = w.notes(eng.id).await.pop().expect("assignment notice");
    assert!(
        w.store
            .was_delivered(&note.key, "pager")
            .await
            .expect("receipt")
    );
    let audit = |w: &World| {
        let store = w.store.clone();
        async move {
            store
                .list_audit(&AuditFilter::default(), PageRequest::first(100))
                .await
                .expect("audit")
                .items
                .len()
        }
    };
    let audit_before = audit(&w).await;

    let none = w
        .engine
        .retention_step(DEFAULT_RETENTION)
        .await
        .expect("step");
    assert_eq!(none.outbox, 0, "a fresh delivery stays");

    w.advance(DEFAULT_RETENTION + mins(1));
    // A notice still waiting for delivery, written now.
    create(&w, &root, Priority::Low, Some(eng)).await;
    let pruned = w
        .engine
        .retention_step(DEFAULT_RETENTION)
        .await
        .expect("step");
    assert_eq!((pruned.outbox, pruned.receipts), (1, 1));
    assert!(
        !w.store
            .was_delivered(&note.key, "pager")
            .await
            .expect("receipt")
    );
    let ops = w.engine.operations().await.expect("operations");
    assert_eq!(ops.outbox_pending, 1, "the pending notice stays");
    assert_eq!(ops.counters.pruned, pruned);
    assert_eq!(
        audit(&w).await,
        audit_before + 1,
        "the audit log is never pruned"
    );
    assert_eq!(w.notes(eng.id).await.len(), 1, "in-app notifications stay");
    w.engine.flush_notifications().await.expect("flush");
    assert_eq!(w.notes(eng.id).await.len(), 2);
}
