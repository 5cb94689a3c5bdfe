//! The change-stream follower: each store's [generations](imas_core::ports::Generations)
//! move with every node's writes to `users`, `incidents` and `alerts` (alert
//! writes count as incident writes), so an engine's read cache never outlives
//! another node's change. A repeated trigger (only `event_count` and
//! `last_event_at` of an alert change) is not counted: it is the hot path and
//! changes nothing an incident read shows.

use std::sync::Weak;
use std::time::Duration;

use imas_core::ports::Generations;
use mongodb::Database;
use mongodb::bson::{Document, doc};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType};

/// Keeps `generations` moving with the writes to `users` and `incidents` that
/// any node makes in `db`, read from the database's change stream, until the
/// store is dropped. Not live until the stream is open; an error or the end of
/// the stream makes it not live until it is open again (events meanwhile are
/// lost, so going live bumps everything). A server without change streams (a
/// standalone one) is never live: the engine reads through.
pub(crate) async fn follow_changes(db: Database, generations: Weak<Generations>) {
    let pipeline = [
        doc! { "$match": { "ns.coll": { "$in": ["users", "incidents", "alerts", "integrations", "services"] } } },
    ];
    let mut warned = false;
    loop {
        let opened = db
            .watch()
            .pipeline(pipeline.clone())
            .max_await_time(Duration::from_secs(2))
            .await;
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => {
                if generations.strong_count() == 0 {
                    return;
                }
                if !warned {
                    tracing::warn!(error = %e, "change stream: cannot open; reads are not cached");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match generations.upgrade() {
            Some(g) => g.set_live(true),
            None => return,
        }
        warned = false;
        loop {
            // Returns after each server round trip (at most `max_await_time`),
            // so a dropped store is noticed.
            let next = stream.next_if_any().await;
            let Some(g) = generations.upgrade() else {
                return;
            };
            match next {
                Ok(Some(event)) => {
                    let repeat = is_repeat_trigger(&event);
                    let coll = event.ns.and_then(|ns| ns.coll).unwrap_or_default();
                    g.bump(
                        coll == "users",
                        coll == "incidents" || (coll == "alerts" && !repeat),
                    );
                    if coll == "integrations" || coll == "services" {
                        g.bump_integrations();
                    }
                }
                Ok(None) if stream.is_alive() => {}
                Ok(None) | Err(_) => {
                    g.set_live(false);
                    tracing::warn!(
                        "change stream: interrupted; reads are not cached until it is back"
                    );
                    break;
                }
            }
        }
    }
}

/// Whether a change event is an update of only the fields a repeated trigger
/// writes.
fn is_repeat_trigger(event: &ChangeStreamEvent<Document>) -> bool {
    event.operation_type == OperationType::Update
        && event.update_description.as_ref().is_some_and(|u| {
            u.removed_fields.is_empty()
                && !u.updated_fields.is_empty()
                && u.updated_fields
                    .keys()
                    .all(|k| k == "event_count" || k == "last_event_at")
        })
}
