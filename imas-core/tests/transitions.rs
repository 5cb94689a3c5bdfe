//! Every status transition, allowed and refused, in the model and through the
//! engine (a refusal is `InvalidTransition` and changes nothing).

mod common;

use imas_core::Error;
use imas_core::engine::{IncidentPatch, NewIncident};
use imas_core::model::{AuditAction, Role, Status};

use Status::*;

/// SPEC §1, as written there.
fn allowed(from: Status) -> &'static [Status] {
    match from {
        Open => &[Acknowledged, InProgress, OnHold, Resolved, Closed],
        Acknowledged => &[InProgress, OnHold, Resolved, Closed],
        InProgress => &[OnHold, Resolved, Closed],
        OnHold => &[InProgress, Resolved, Closed],
        Resolved => &[Closed, InProgress],
        Closed => &[],
    }
}

/// A path from `open` to each status.
fn path_to(s: Status) -> &'static [Status] {
    match s {
        Open => &[],
        Acknowledged => &[Acknowledged],
        InProgress => &[InProgress],
        OnHold => &[OnHold],
        Resolved => &[Resolved],
        Closed => &[Closed],
    }
}

#[test]
fn the_lifecycle_table() {
    for from in Status::ALL {
        for to in Status::ALL {
            assert_eq!(
                from.can_transition_to(*to),
                allowed(*from).contains(to),
                "{from} -> {to}"
            );
        }
    }
}

#[tokio::test]
async fn the_engine_allows_and_refuses_every_pair() {
    let w = common::world();
    let eng = w.user("eng", Role::Engineer).await;
    for from in Status::ALL {
        for to in Status::ALL {
            let inc = w
                .engine
                .create_incident(
                    &eng,
                    NewIncident {
                        title: format!("{from} to {to}"),
                        ..Default::default()
                    },
                )
                .await
                .expect("create");
            for step in path_to(*from) {
                w.engine
                    .change_status(&eng, inc.id, *step)
                    .await
                    .expect("path");
            }
            let before = w.engine.get_incident(&eng, inc.id).await.expect("get");
            let r = w.engine.change_status(&eng, inc.id, *to).await;
            if from == to {
                // Not a transition: nothing to do, nothing written.
                assert_eq!(r.expect("same status"), before);
            } else if allowed(*from).contains(to) {
                let after = r.expect("allowed");
                assert_eq!(after.status, *to);
                assert_eq!(after.version, before.version + 1);
                assert_eq!(
                    w.audit_count(AuditAction::StatusChanged, &inc.id.to_string())
                        .await,
                    path_to(*from).len() + 1
                );
            } else {
                let e = r.expect_err("refused");
                assert!(
                    matches!(e, Error::InvalidTransition { from: f, to: t } if f == *from && t == *to),
                    "{e}"
                );
                assert_eq!(
                    w.engine.get_incident(&eng, inc.id).await.expect("get"),
                    before,
                    "a refusal changes nothing"
                );
            }
        }
    }
}

#[tokio::test]
async fn lifecycle_timestamps() {
    let w = common::world();
    let eng = w.user("eng", Role::Engineer).await;
    let inc = w
        .engine
        .create_incident(
            &eng,
            NewIncident {
                title: "t".into(),
                ..Default::default()
            },
        )
        .await
        .expect("create");
    w.advance(common::mins(1));
    let a = w
        .engine
        .change_status(&eng, inc.id, InProgress)
        .await
        .expect("start");
    assert_eq!(
        a.acknowledged_at,
        Some(w.engine.clock().now()),
        "leaving open acknowledges"
    );
    w.advance(common::mins(1));
    let r = w
        .engine
        .change_status(&eng, inc.id, Resolved)
        .await
        .expect("resolve");
    assert_eq!(r.resolved_at, Some(w.engine.clock().now()));
    let reopened = w
        .engine
        .change_status(&eng, inc.id, InProgress)
        .await
        .expect("reopen");
    assert_eq!(reopened.resolved_at, None, "reopening clears resolvedAt");
    assert_eq!(
        reopened.acknowledged_at, a.acknowledged_at,
        "acknowledgement is kept"
    );
    let closed = w
        .engine
        .change_status(&eng, inc.id, Closed)
        .await
        .expect("close");
    assert!(closed.closed_at.is_some());
    let patch = IncidentPatch {
        status: Some(Open),
        ..Default::default()
    };
    assert!(
        w.engine
            .update_incident(&eng, inc.id, patch, None)
            .await
            .is_err(),
        "closed is final"
    );
}
