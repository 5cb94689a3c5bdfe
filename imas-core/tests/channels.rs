//! The channel port as the engine drives it: each channel is handed the
//! recipient the engine looked up (so a channel such as email needs no store of
//! its own), and `None` for a notification whose user does not exist.

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::world_with_channel;
use imas_core::Result;
use imas_core::engine::NewIncident;
use imas_core::model::{Notification, NotificationIntent, NotificationType, Role, UserId};
use imas_core::ports::{Change, ChangeStore, Channel, Recipient};
use imas_core::testkit::store::t0;

/// A channel that records whom each notification was handed for.
#[derive(Debug, Default)]
struct Recording(Mutex<Vec<(UserId, Option<Recipient>)>>);

#[async_trait]
impl Channel for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }
    async fn deliver(&self, n: &Notification, to: Option<&Recipient>) -> Result<()> {
        self.0.lock().expect("lock").push((n.user, to.cloned()));
        Ok(())
    }
}

#[tokio::test]
async fn a_channel_is_handed_the_recipient_the_engine_looked_up() {
    let channel = Arc::new(Recording::default());
    let w = world_with_channel(channel.clone());
    let root = w.root().await;
    let eng = w.user("eng", Role::Engineer).await;
    w.engine
        .create_incident(
            &root,
            NewIncident {
                title: "Disk full".into(),
                assigned_to: Some(eng.id),
                ..Default::default()
            },
        )
        .await
        .expect("incident");
    // A notification for a user the store does not know.
    let stranger = UserId::new();
    w.store
        .commit(Change {
            outbox: vec![NotificationIntent {
                key: "for-nobody".into(),
                user: stranger,
                message: "nobody reads this".into(),
                kind: NotificationType::Info,
                incident_id: None,
                created_at: t0(),
            }],
            ..Change::default()
        })
        .await
        .expect("commit");
    w.engine.flush_notifications().await.expect("flush");

    let handed = channel.0.lock().expect("lock").clone();
    assert_eq!(handed.len(), 2, "{handed:?}");
    let to_eng = handed
        .iter()
        .find(|(user, _)| *user == eng.id)
        .and_then(|(_, to)| to.clone())
        .expect("the assignee's notification carries its recipient");
    assert_eq!(to_eng.id, eng.id);
    assert_eq!(to_eng.username, "eng");
    assert!(to_eng.email.contains('@'), "{to_eng:?}");
    let to_stranger = handed.iter().find(|(user, _)| *user == stranger);
    assert_eq!(
        to_stranger.map(|(_, to)| to.clone()),
        Some(None),
        "a notification for an unknown user is still handed over, with no recipient"
    );
}
