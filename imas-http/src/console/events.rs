//! `GET /ui/events`: the console's live stream (Server-Sent Events, session
//! cookie). Event `incidents` whenever the store's incidents generation moves
//! (looked at every 250 ms; every 2 s when the store has no live generation),
//! event `notifications` with the caller's unread count when it changes (its
//! data: the number, as `#unread-count` shows it; counted again when a
//! notification of the caller is delivered here, and every 10 s for those read
//! or delivered elsewhere). Pages subscribe with htmx's SSE extension and
//! re-fetch their partials on `sse:incidents`. A stream holds one of the
//! caller's live-stream slots, like `GET /notifications/stream` (one more is
//! 429). It ends at server shutdown, and when the session's token expires
//! with a last event `signed-out`, on which the page goes to the sign-in form.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;

use imas_core::model::Notification;

use super::{ConsoleState, Session, UNREAD_CAP};

pub(super) fn router() -> Router<ConsoleState> {
    Router::new().route("/ui/events", get(events))
}

/// How often the incidents generation is looked at.
const TICK: Duration = Duration::from_millis(250);
/// Ticks between two `incidents` events when the store has no live generation.
const BLIND_TICKS: u32 = 8;
/// Ticks between two looks at the unread count with no delivery heard of.
const UNREAD_TICKS: u32 = 40;

/// The caller's notifications delivered by this process (holding a stream
/// slot while the stream lives).
type Deliveries = std::pin::Pin<Box<dyn futures::stream::FusedStream<Item = Notification> + Send>>;

struct Watch {
    state: ConsoleState,
    session: Session,
    generation: Option<u64>,
    unread: Option<String>,
    recount: bool,
    deliveries: Deliveries,
    ticks: u32,
    interval: tokio::time::Interval,
    /// When the session's token expires: the last event, `signed-out`.
    expires: tokio::time::Instant,
    ended: bool,
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
    let deliveries: Deliveries = match s.engine.subscribe_notifications(&session.who) {
        Ok(d) => Box::pin(d),
        Err(e) => return crate::ApiError::from(e).into_response(),
    };
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
        recount: true,
        deliveries,
        ticks: 0,
        interval,
        expires: tokio::time::Instant::now() + left,
        ended: false,
    };
    let stream = futures::stream::unfold(watch, |mut w| async move {
        if w.ended {
            return None;
        }
        loop {
            tokio::select! {
                _ = w.interval.tick() => {}
                delivered = w.deliveries.next(), if !w.deliveries.is_terminated() => {
                    if delivered.is_some() {
                        w.recount = true;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(w.expires) => {
                    w.ended = true;
                    let event = Event::default().event("signed-out").data("expired");
                    return Some((Ok::<_, Infallible>(event), w));
                }
            }
            w.ticks = w.ticks.wrapping_add(1);
            if w.recount || w.ticks % UNREAD_TICKS == 0 {
                w.recount = false;
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
        match shutdown.as_mut() {
            Some(rx) => {
                let _ = rx.wait_for(|stop| *stop).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    Sse::new(stream.take_until(stop).fuse())
        .keep_alive(KeepAlive::default())
        .into_response()
}
