//! Serving a router over TCP with the limits a server facing the open network
//! needs: hyper-util's server (HTTP/1.1 and HTTP/2 on the same port) with a
//! timer, so that hyper's header-read timeout fires, and a cap on open
//! connections. The cap on concurrent requests and the request timeout belong to
//! the router ([`crate::RouterOptions`]). With [`ServeOptions::tls`] it speaks
//! HTTPS only (rustls; HTTP/2 or HTTP/1.1 by ALPN), under the same limits: the
//! handshake counts against the header timeout and holds a connection slot.
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
use imas_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant as Deadline;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
    /// `Some`: HTTPS only, with this certificate. The TLS handshake must end
    /// within `header_timeout` of the connection's start, like a first request
    /// (the first request's headers are due by the same instant).
    pub tls: Option<Tls>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            tls: None,
        }
    }
}

/// A server certificate chain and its private key, ready to accept TLS
/// connections (rustls with the ring provider; TLS 1.2 and 1.3; ALPN offers
/// `h2` and `http/1.1`).
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// What a certificate chain must look like, in configuration errors.
const CERT_FORM: &str = "expected a PEM certificate chain (-----BEGIN CERTIFICATE----- blocks, the server's certificate first)";
/// What a private key must look like, in configuration errors.
const KEY_FORM: &str =
    "expected a PEM private key (-----BEGIN PRIVATE KEY-----, or an RSA or EC PRIVATE KEY block)";

impl Tls {
    /// From PEM text: `cert`, the certificate chain (the server's certificate
    /// first, then any intermediates), and `key`, its private key (PKCS#8,
    /// PKCS#1 or SEC1). A problem is [`Error::Config`] naming the setting
    /// `cert` or `key` and the expected form; a key that is not the
    /// certificate's names `key`.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<Tls> {
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<std::result::Result<Vec<_>, pem::Error>>()
            .map_err(|e| Error::config("cert", format!("{CERT_FORM}: {e}")))?;
        if chain.is_empty() {
            return Err(Error::config(
                "cert",
                format!("{CERT_FORM}: no certificate found"),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
            pem::Error::NoItemsFound => {
                Error::config("key", format!("{KEY_FORM}: no private key found"))
            }
            e => Error::config("key", format!("{KEY_FORM}: {e}")),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config("cert", format!("no TLS version available: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(e) => Error::config(
                    "cert",
                    format!("{CERT_FORM}: the server's certificate cannot be read ({e:?})"),
                ),
                rustls::Error::InconsistentKeys(_) => Error::config(
                    "key",
                    "expected the private key of the server's certificate (the first of the chain): this key is another's",
                ),
                e => Error::config("key", format!("{KEY_FORM}: {e}")),
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
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
    // Connections still in their TLS handshake are not hyper's yet: this tells
    // them to give up when the server shuts down.
    let (closing, closing_rx) = watch::channel(false);
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
        let accepted = Accepted {
            builder: builder.clone(),
            peer,
            app: app.clone(),
            deadline: Deadline::now() + options.header_timeout,
            slot,
            watcher: graceful.watcher(),
        };
        match &options.tls {
            None => {
                tokio::spawn(accepted.serve(stream));
            }
            Some(tls) => {
                let (acceptor, closing) = (tls.acceptor.clone(), closing_rx.clone());
                tokio::spawn(accepted.serve_tls(acceptor, stream, closing));
            }
        }
    }
    drop(listener);
    let _ = closing.send(true);
    graceful.shutdown().await;
    Ok(())
}

/// An accepted connection and what serving it needs.
struct Accepted {
    builder: Arc<auto::Builder<TokioExecutor>>,
    peer: SocketAddr,
    app: Router,
    /// When the TLS handshake and the first request's arrival are due: the
    /// header timeout after the connection's start.
    deadline: Deadline,
    /// The connection's place under the cap, held until it closes.
    slot: OwnedSemaphorePermit,
    watcher: Watcher,
}

impl Accepted {
    /// The TLS handshake, then HTTP over it. The connection is dropped
    /// (closed) if the handshake has not ended by the deadline, fails, or the
    /// server shuts down first, so a client that stalls mid-handshake holds its
    /// slot no longer than a slow first request would.
    async fn serve_tls(
        self,
        acceptor: TlsAcceptor,
        stream: TcpStream,
        mut closing: watch::Receiver<bool>,
    ) {
        let peer = self.peer;
        let handshake = tokio::time::timeout_at(self.deadline, acceptor.accept(stream));
        let stream = tokio::select! {
            done = handshake => match done {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "connection closed: TLS handshake not done within the header timeout");
                    return;
                }
            },
            _ = closing.wait_for(|closing| *closing) => return,
        };
        self.serve(stream).await;
    }

    /// One connection, served until it ends or the server shuts down
    /// (`watcher`). It is dropped (closed) if no request has arrived by the
    /// deadline: hyper's own header timeout only starts once the protocol is
    /// known, that is once the client has sent something, and HTTP/2 has none.
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Accepted {
            builder,
            peer,
            app,
            deadline,
            slot,
            watcher,
        } = self;
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
        let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
        tokio::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = tokio::time::sleep_until(deadline) => {
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
