//! SLA scenarios through the engine on the SQL stores, on a manual clock: hold
//! and resume move the deadline by the time on hold, acknowledging stops
//! escalation, a priority change moves the deadline, and each step is recorded
//! once however often the monitor sweeps.

#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::sync::Arc;
use std::time::Duration;

use imas_core::auth::JwtKeys;
use imas_core::engine::{IncidentPatch, NewIncident};
use imas_core::model::{AuditAction, AuditFilter, PageRequest, Priority, Role, Status};
use imas_core::ports::{Change, ManualClock, Store, UserWrite};
use imas_core::testkit::service_url;
use imas_core::testkit::store::{t0, user};
use imas_core::{Engine, Principal};
use imas_store_sqlx::{PostgresStore, SqliteStore};

async fn stores() -> Vec<(&'static str, Arc<dyn Store>)> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("engine-{}.db", uuid::Uuid::new_v4()));
    let mut out: Vec<(&'static str, Arc<dyn Store>)> = vec![(
        "sqlite",
        Arc::new(
            SqliteStore::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("sqlite"),
        ),
    )];
    if let Some(url) = service_url("DATABASE_URL") {
        let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
        out.push((
            "postgres",
            Arc::new(
                PostgresStore::connect_in_schema(&url, &schema)
                    .await
                    .expect("postgres"),
            ),
        ));
    }
    out
}

fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_rules_hold_on_the_sql_stores() {
    for (name, store) in stores().await {
        let clock = ManualClock::new(t0());
        let engine = Engine::builder(store.clone())
            .clock(Arc::new(clock.clone()))
            .jwt_keys(JwtKeys::new(&[3u8; 32], Duration::from_secs(3600)).expect("keys"))
            .build()
            .expect("engine");
        let (admin, eng) = (user("root", Role::Admin), user("eng", Role::Engineer));
        for u in [&admin, &eng] {
            store
                .commit(Change {
                    user: Some(UserWrite::Insert(u.clone())),
                    ..Change::default()
                })
                .await
                .expect("user");
        }
        let root = Principal {
            id: admin.id,
            role: Role::Admin,
        };
        let new = |title: &str, p: Priority| NewIncident {
            title: title.into(),
            priority: Some(p),
            assigned_to: Some(eng.id),
            ..Default::default()
        };
        let held = engine
            .create_incident(&root, new("held", Priority::High))
            .await
            .expect("create");
        let acked = engine
            .create_incident(&root, new("acked", Priority::Critical))
            .await
            .expect("create");
        let raised = engine
            .create_incident(&root, new("raised", Priority::Low))
            .await
            .expect("create");

        // Hold for two hours: the deadline moves by exactly that.
        clock.advance(mins(30));
        engine
            .change_status(&root, held.id, Status::OnHold)
            .await
            .expect("hold");
        engine
            .update_incident(
                &root,
                raised.id,
                IncidentPatch {
                    priority: Some(Priority::Critical),
                    ..Default::default()
                },
                None,
            )
            .await
            .expect("raise");
        clock.advance(mins(31)); // 61 minutes: critical ones breached
        for _ in 0..3 {
            engine.sweep_all().await.expect("sweep");
        }
        engine
            .change_status(&root, acked.id, Status::Acknowledged)
            .await
            .expect("ack");
        clock.advance(mins(89)); // 150 minutes
        engine
            .change_status(&root, held.id, Status::InProgress)
            .await
            .expect("resume");
        clock.advance(mins(60)); // 210 minutes: past any level-2 time
        for _ in 0..3 {
            engine.sweep_all().await.expect("sweep");
        }

        let held = engine.get_incident(&root, held.id).await.expect("get");
        assert_eq!(
            held.sla_deadline,
            held.created_at + chrono::Duration::hours(6),
            "{name}: 4 h + 2 h on hold"
        );
        assert!(
            !held.sla_breached,
            "{name}: the hold kept it within its SLA"
        );
        let acked = engine.get_incident(&root, acked.id).await.expect("get");
        assert!(acked.sla_breached, "{name}");
        assert_eq!(
            acked.escalation_level, 1,
            "{name}: acknowledged before level 2, so no level 2"
        );
        let raised = engine.get_incident(&root, raised.id).await.expect("get");
        assert_eq!(
            raised.sla_deadline,
            raised.created_at + chrono::Duration::hours(1),
            "{name}: moved by the priority"
        );
        assert!(
            raised.sla_breached && raised.escalation_level == 2,
            "{name}: breached and escalated twice"
        );
        let breaches = store
            .list_audit(
                &AuditFilter {
                    action: Some(AuditAction::SlaBreach),
                    ..Default::default()
                },
                PageRequest::first(50),
            )
            .await
            .expect("audit");
        assert_eq!(
            breaches.items.len(),
            2,
            "{name}: one SLA_BREACH for each breached incident"
        );
    }
}
