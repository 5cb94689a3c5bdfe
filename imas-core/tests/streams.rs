//! The engine's streams are fused: polled again after their end, they stay
//! ended. HTTP bodies poll their stream once more after it ended (tower-http's
//! compression body looks for trailers); an unfused `unfold` panics there.

mod common;

use futures::StreamExt;
use futures::stream::FusedStream;
use imas_core::engine::NewIncident;
use imas_core::model::IncidentFilter;

#[tokio::test]
async fn the_export_stream_stays_ended_when_polled_again() {
    let w = common::world();
    let root = w.root().await;
    for n in 0..3 {
        w.engine
            .create_incident(
                &root,
                NewIncident {
                    title: format!("incident {n}"),
                    ..Default::default()
                },
            )
            .await
            .expect("create");
    }
    // A batch of 2: a full page, then a short one, then the end.
    let mut pages = Box::pin(
        w.engine
            .export_incidents(&root, IncidentFilter::default(), 2)
            .expect("export"),
    );
    let mut seen = 0;
    while let Some(page) = pages.next().await {
        seen += page.expect("page").len();
    }
    assert_eq!(seen, 3);
    assert!(pages.is_terminated());
    for _ in 0..3 {
        assert!(pages.next().await.is_none(), "ended for good");
    }
}

#[tokio::test]
async fn the_notification_stream_stays_ended_when_polled_again() {
    let w = common::world();
    let root = w.root().await;
    let mut live = Box::pin(w.engine.subscribe_notifications(&root).expect("subscribe"));
    // The stream ends when the engine (the sender of live notifications) goes.
    drop(w);
    assert!(live.next().await.is_none());
    assert!(live.is_terminated());
    for _ in 0..3 {
        assert!(live.next().await.is_none(), "ended for good");
    }
}
