//! `GET /ui/events`: the console's live stream (Server-Sent Events, session
//! cookie). Event `incidents` whenever the store's incidents generation moves
//! (looked at every 250 ms; every 2 s when the store has no live generation),
//! event `notifications` with the caller's unread count when it changes (its
//! data: the number, as `#unread-count` shows it). Pages subscribe with htmx's
//! SSE extension and re-fetch their partials on `sse:incidents`. The stream
//! ends when the session's token expires and at server shutdown.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;

use super::{ConsoleState, Session, UNREAD_CAP};

pub(super) fn router() -> Router<ConsoleState> {
    Router::new().route("/ui/events", get(events))
}

/// How often the incidents generation is looked at.
const TICK: Duration = Duration::from_millis(250);
/// Ticks between two `incidents` events when the store has no live generation.
const BLIND_TICKS: u32 = 8;
/// Ticks between two looks at the unread count.
const UNREAD_TICKS: u32 = 4;

struct Watch {
    state: ConsoleState,
    session: Session,
    generation: Option<u64>,
    unread: Option<String>,
    ticks: u32,
    interval: tokio::time::Interval,
}

/// `?since=<generation>`: the incidents generation the page was rendered at.
#[derive(Debug, serde::Deserialize)]
struct Since {
    since: Option<String>,
}

async fn events(
    State(s): State<ConsoleState>,
    session: Session,
    Query(q): Query<Since>,
) -> Response {
    let left = (session.expires - s.engine.now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watch = Watch {
        // From the page's generation when it says one: a change made between
        // the page and this stream is announced at once.
        generation: q
            .since
            .and_then(|g| g.parse().ok())
            .or_else(|| s.engine.incidents_generation()),
        state: s.clone(),
        session,
        unread: None,
        ticks: 0,
        interval,
    };
    let stream = futures::stream::unfold(watch, |mut w| async move {
        loop {
            w.interval.tick().await;
            w.ticks = w.ticks.wrapping_add(1);
            if w.unread.is_none() || w.ticks % UNREAD_TICKS == 0 {
                let now = match w
                    .state
                    .engine
                    .unread_notifications(&w.session.who, UNREAD_CAP)
                    .await
                {
                    Ok((n, false)) => Some(n.to_string()),
                    Ok((n, true)) => Some(format!("{n}+")),
                    Err(_) => None,
                };
                if let Some(now) = now.filter(|n| w.unread.as_ref() != Some(n)) {
                    w.unread = Some(now.clone());
                    let event = Event::default().event("notifications").data(now);
                    return Some((Ok::<_, Infallible>(event), w));
                }
            }
            let moved = match w.state.engine.incidents_generation() {
                Some(g) => {
                    let moved = w.generation != Some(g);
                    w.generation = Some(g);
                    moved
                }
                None => {
                    w.generation = None;
                    w.ticks % BLIND_TICKS == 0
                }
            };
            if moved {
                let event = Event::default().event("incidents").data("changed");
                return Some((Ok(event), w));
            }
        }
    });
    let mut shutdown = s.shutdown.clone();
    let stop = async move {
        let expiry = tokio::time::sleep(left);
        match shutdown.as_mut() {
            Some(rx) => {
                tokio::select! {
                    _ = rx.wait_for(|stop| *stop) => {}
                    () = expiry => {}
                }
            }
            None => expiry.await,
        }
    };
    Sse::new(stream.take_until(stop).fuse())
        .keep_alive(KeepAlive::default())
        .into_response()
}
