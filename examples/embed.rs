//! Run with: cargo run --example embed
//!
//! A host application embedding the IMAS engine with the in-memory backends and a
//! manual clock: it creates users and an incident, lets two simulated hours pass,
//! and prints the at-risk warning, the breach, the escalations and the
//! notifications each person received. It checks what it prints (and exits
//! non-zero if the engine did anything else): CI runs it.

use std::sync::Arc;
use std::time::Duration;

use imas::engine::NewIncident;
use imas::memory::{MemoryQueue, MemoryStore};
use imas::model::{AuditAction, AuditFilter, NotificationType, PageRequest, Priority, Role};
use imas::ports::ManualClock;
use imas::{Engine, Principal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> imas::Result<()> {
    let clock = ManualClock::new(chrono::Utc::now());
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .clock(Arc::new(clock.clone()))
        .queue(Arc::new(MemoryQueue::new(
            Arc::new(clock.clone()),
            Default::default(),
        )))
        .jwt_keys(imas::auth::JwtKeys::new(
            b"an embedded host's 32-byte secret!",
            Duration::from_secs(3600),
        )?)
        .build()?;

    // The first admin, then an engineer promoted by that admin.
    engine
        .ensure_admin("root", "change me please", "root@example.com")
        .await?;
    let root = engine
        .authenticate(&engine.login("root", "change me please").await?)
        .await?;
    let (grace, _) = engine
        .register(imas::engine::NewUser {
            name: "Grace Hopper".into(),
            username: "grace".into(),
            email: "grace@example.com".into(),
            password: "debugging is fun".into(),
        })
        .await?;
    engine.change_role(&root, grace.id, Role::Engineer).await?;
    let grace = Principal {
        id: grace.id,
        role: Role::Engineer,
    };

    let incident = engine
        .create_incident(
            &root,
            NewIncident {
                title: "Checkout returns 502".into(),
                description: Some(
                    "Payments API behind the load balancer is failing health checks".into(),
                ),
                priority: Some(Priority::Critical),
                assigned_to: Some(grace.id),
                ..Default::default()
            },
        )
        .await?;
    println!(
        "created {:?} ({}), SLA deadline {}",
        incident.title, incident.priority, incident.sla_deadline
    );

    // Let time pass in five-minute steps; the host runs the engine's steps (a
    // server runs them in background loops).
    for _ in 0..24 {
        clock.advance(Duration::from_secs(300));
        engine.sweep_all().await?;
        engine.flush_notifications().await?;
    }

    let now = engine.get_incident(&root, incident.id).await?;
    println!(
        "after two hours: breached={} at {:?}, escalation level {}",
        now.sla_breached,
        now.breached_at.map(|t| t.to_rfc3339()),
        now.escalation_level
    );
    // A critical incident: one hour to resolve, then level 1 at the breach and
    // level 2 thirty minutes later.
    assert!(now.sla_breached, "breached within two hours");
    assert_eq!(
        now.breached_at,
        Some(incident.sla_deadline),
        "at the deadline"
    );
    assert_eq!(now.escalation_level, 2);
    let mut received = Vec::new();
    for (who, name) in [(&grace, "grace"), (&root, "root")] {
        for n in engine
            .list_notifications(who, PageRequest::default())
            .await?
            .items
            .iter()
            .rev()
        {
            println!(
                "  notification for {name:5} [{:10}] {}",
                n.kind.as_str(),
                n.message
            );
            received.push((name, n.kind));
        }
    }
    assert_eq!(
        received,
        [
            ("grace", NotificationType::Info),
            ("grace", NotificationType::Warning),
            ("grace", NotificationType::Warning),
            ("grace", NotificationType::Escalation),
            ("root", NotificationType::Escalation),
        ],
        "assignment, missed response, at risk and breach for grace; level 2 for root"
    );
    println!("audit trail:");
    let trail = engine
        .list_audit(&root, &AuditFilter::default(), PageRequest::default())
        .await?;
    for e in trail.items.iter().rev() {
        println!(
            "  {} {:20} {}",
            e.created_at.format("%H:%M:%S"),
            e.action.as_str(),
            e.description
        );
    }
    use AuditAction::*;
    assert_eq!(
        trail
            .items
            .iter()
            .rev()
            .map(|e| e.action)
            .collect::<Vec<_>>(),
        [
            UserRegistered,
            Login,
            UserRegistered,
            RoleChanged,
            IncidentCreated,
            SlaResponseBreach,
            SlaAtRisk,
            SlaBreach,
            Escalation,
            Escalation,
        ],
        "each step once, in order"
    );
    println!("checked: each step once, in order, to the right people");
    Ok(())
}
