//! Serving a router over TCP with the limits a server facing the open network
//! needs: hyper-util's server (HTTP/1.1 and HTTP/2 on the same port) with a
//! timer, so that hyper's header-read timeout fires, and a cap on open
//! connections. The cap on concurrent requests and the request timeout belong to
//! the router ([`crate::RouterOptions`]).
//!
//! Every request carries [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo)
//! with the client's address, as with axum's
//! `into_make_service_with_connect_info::<SocketAddr>()`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// Limits of [`serve`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Longest time a client may take to send a request's headers: from the
    /// connection's start to its first request, and from the end of one answer
    /// to the end of the next request's headers (so an idle HTTP/1.1 keep-alive
    /// connection is closed after it too). A client that is slower is cut off.
    pub header_timeout: Duration,
    /// Most connections open at once. A connection beyond it is closed as soon
    /// as it is accepted, without an answer; the open ones are served as usual.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// How often HTTP/2 connections are pinged, so that a peer gone silent is
/// noticed and its connection closed.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Pause after an accept error that is not the client's (out of file
/// descriptors, say), so the loop does not spin while the cause lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Longest silence between two warnings that connections are being refused.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting,
/// lets every open connection finish its requests in flight (idle ones are
/// closed at once), and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let graceful = GracefulShutdown::new();
    let mut refused = Refusals::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot accept connections; retrying");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.note(options.max_connections);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = connection(
            builder.clone(),
            stream,
            peer,
            app.clone(),
            options.header_timeout,
            slot,
            graceful.watcher(),
        );
        tokio::spawn(connection);
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One connection, served until it ends or the server shuts down (`watcher`).
/// It is dropped (closed) if no request arrives within `first_request` of the
/// connection's start: hyper's own header timeout only starts once the
/// protocol is known, that is once the client has sent something, and HTTP/2
/// has none.
async fn connection(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    first_request: Duration,
    slot: OwnedSemaphorePermit,
    watcher: Watcher,
) {
    let _slot = slot;
    let seen = Arc::new(AtomicBool::new(false));
    let service = {
        let seen = seen.clone();
        TowerToHyperService::new(app.map_request(move |mut req: hyper::Request<Incoming>| {
            seen.store(true, Ordering::Release);
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        }))
    };
    let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = tokio::time::sleep(first_request) => {
            if !seen.load(Ordering::Acquire) {
                tracing::debug!(%peer, "connection closed: no request within the header timeout");
                return;
            }
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Whether an accept error concerns only the one connection (the next accept
/// may well succeed at once).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Connections refused at the cap, warned about now and then rather than each.
#[derive(Debug, Default)]
struct Refusals {
    since_warning: u64,
    warned_at: Option<Instant>,
}

impl Refusals {
    fn note(&mut self, cap: usize) {
        self.since_warning += 1;
        if self
            .warned_at
            .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY)
        {
            tracing::warn!(
                cap,
                refused = self.since_warning,
                "connection cap reached: refusing new connections (ServeOptions::max_connections)"
            );
            self.since_warning = 0;
            self.warned_at = Some(Instant::now());
        }
    }
}
