//! The IMAS HTTP API: [`router`] turns an [`Engine`] into an axum [`Router`] with
//! the routes of the original IMAS (same paths and methods) plus the additions of
//! the specification. It holds no business rule: it maps HTTP to engine calls and
//! engine errors to status codes. The routes live by resource in `api/` (one
//! module per feature of the engine: its routes, handlers and OpenAPI entries
//! together); this module adds the layers every route shares. The web console
//! (`console`, under `/ui/`) comes with it. A host can mount the API under a
//! prefix:
//!
//! ```no_run
//! # fn demo(engine: imas_core::Engine) {
//! let app = axum::Router::new().nest("/imas", imas_http::router(engine));
//! # }
//! ```
//!
//! but the console's links, forms, assets and cookies are absolute (`/ui/...`):
//! it works only with the router mounted at the root.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use imas_core::Engine;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

mod api;
pub mod console;
pub mod error;
pub mod extract;
mod metrics;
pub mod openapi;
pub mod serve;

pub use api::MAX_NOTIFICATION_BYTES;
pub use error::{ApiError, ApiResult};

/// JSON bodies of list pages, kept while the engine's read cache keeps the page
/// itself (each entry holds the page weakly: when the engine drops a page, a
/// change having made it stale, its body goes too).
#[derive(Debug, Default)]
struct BodyCache {
    entries: Mutex<
        Vec<(
            Weak<imas_core::model::Page<imas_core::model::Incident>>,
            axum::body::Bytes,
        )>,
    >,
}

/// Most bodies kept.
const MAX_BODIES: usize = 64;

impl BodyCache {
    /// The page's items as a JSON array, serialized once per cached page.
    fn json(
        &self,
        page: &Arc<imas_core::model::Page<imas_core::model::Incident>>,
    ) -> ApiResult<axum::body::Bytes> {
        let lock = || self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let found = lock()
            .iter()
            .find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(page)) && w.strong_count() > 0)
            .map(|(_, b)| b.clone());
        if let Some(body) = found {
            return Ok(body);
        }
        let body = axum::body::Bytes::from(serde_json::to_vec(&page.items).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot serialize a page: {e}"),
            )
        })?);
        let mut entries = lock();
        entries.retain(|(w, _)| w.strong_count() > 0);
        if entries.len() >= MAX_BODIES {
            entries.remove(0);
        }
        entries.push((Arc::downgrade(page), body.clone()));
        Ok(body)
    }
}

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// Serialized list pages, while the engine's cache holds the page.
    bodies: Arc<BodyCache>,
    /// Turns true when the server begins to shut down: live streams end then,
    /// so that a graceful shutdown is not held open by them.
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    /// Request counts and latencies for `/metrics`.
    metrics: Arc<metrics::HttpMetrics>,
    /// The bearer token `/metrics` requires, if any.
    metrics_token: Option<Arc<str>>,
}

/// Options of [`router_with`].
#[derive(Debug, Clone)]
pub struct RouterOptions {
    /// Longest time a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// Allowed CORS origins; empty (the default) adds no CORS headers at all.
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// Ends live streams (`/notifications/stream`) when it turns true.
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    /// When set, `GET /metrics` answers only requests carrying it as a bearer
    /// token (401 otherwise); unset, it is open.
    pub metrics_token: Option<String>,
    /// Most requests handled at once; one more is answered 503 with
    /// `Retry-After` at once instead of waiting (a streamed body, a report or a
    /// live stream, no longer counts once its headers are sent).
    pub max_concurrent_requests: usize,
    /// Adds `Secure` to the web console's cookies (set it when serving HTTPS).
    pub secure_cookies: bool,
}

impl Default for RouterOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            shutdown: None,
            metrics_token: None,
            max_concurrent_requests: 512,
            secure_cookies: false,
        }
    }
}

/// The API with default options.
pub fn router(engine: Engine) -> Router {
    router_with(engine, RouterOptions::default())
}

/// The API: every route, JSON errors, a 1 MiB body limit, request ids in traces,
/// timeouts, compression, and CORS only when origins are configured; with the
/// web console ([`console::router`]) under `/ui`, and `GET /` redirected there.
pub fn router_with(engine: Engine, options: RouterOptions) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let http_metrics = Arc::new(metrics::HttpMetrics::default());
    let (api, doc) = api::router().split_for_parts();
    let ui = console::router(
        engine.clone(),
        console::ConsoleOptions {
            secure_cookies: options.secure_cookies,
            shutdown: options.shutdown.clone(),
        },
    );
    let api = api
        .route("/openapi.json", api::openapi_json(&doc))
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/ui/") }),
        )
        .fallback(api::no_route)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(AppState {
            engine,
            bodies: Arc::default(),
            shutdown: options.shutdown,
            metrics: http_metrics.clone(),
            metrics_token: options.metrics_token.map(Arc::from),
        })
        .merge(ui);
    let mut app = api
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(compression())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        // One limit shared by every route (a per-route limit would multiply it).
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(
                    options.max_concurrent_requests,
                )),
        )
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                let uri = loggable_uri(req.uri());
                tracing::info_span!("request", method = %req.method(), uri = %uri, request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    // Outermost, so that every answer is counted (timeouts included); route
    // layers see axum's MatchedPath.
    app = app.layer(axum::middleware::from_fn_with_state(
        http_metrics,
        metrics::track,
    ));
    if !options.cors_origins.is_empty() {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(options.cors_origins)
                .allow_methods(tower_http::cors::Any)
                .allow_headers(tower_http::cors::Any),
        );
    }
    app.layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ))
    .layer(SetResponseHeaderLayer::overriding(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
}

/// A request's URI as traces show it: an integration key sent as `?key=...`
/// (`POST /integrations/alertmanager`) is a secret, and is replaced. Names
/// are compared as the route reads them, percent-decoded (`?k%65y=` is
/// `key` too).
fn loggable_uri(uri: &axum::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.to_string();
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            let decoded: Vec<(String, String)> =
                serde_urlencoded::from_str(&format!("{name}=")).unwrap_or_default();
            match decoded.first() {
                Some((n, _)) if n == "key" => "key=REDACTED".to_string(),
                _ => pair.to_string(),
            }
        })
        .collect();
    format!("{}?{}", uri.path(), redacted.join("&"))
}

/// The answer to a request shed by the concurrency limit (`load_shed` over a
/// global concurrency limit: nothing queues): 503 with `Retry-After`.
async fn overloaded(e: tower::BoxError) -> ApiError {
    if e.is::<tower::load_shed::error::Overloaded>() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is handling as many requests as it may; retry shortly",
        )
        .retry_after(Duration::from_secs(1))
    } else {
        tracing::error!(error = %e, "request failed in the concurrency limit");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    }
}

/// Responses are compressed for clients that ask, at the codecs' fastest
/// useful level, and only above 1 KiB: an API answers on the fly, every
/// request again, so the default levels (gzip 6) cost several times the
/// request itself for lists that compress almost as well at level 1, and a
/// single incident's JSON gains less than compressing it costs
/// (`benches/http_load.sh`, README *Performance*).
fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .quality(CompressionLevel::Precise(1))
        .compress_when(DefaultPredicate::new().and(SizeAbove::new(1024)))
}

#[cfg(test)]
mod tests {
    use super::loggable_uri;

    #[test]
    fn an_integration_key_in_the_query_is_not_logged() {
        let uri = "/integrations/alertmanager?key=abc123&x=1"
            .parse()
            .expect("uri");
        assert_eq!(
            loggable_uri(&uri),
            "/integrations/alertmanager?key=REDACTED&x=1"
        );
        let uri = "/integrations/alertmanager?k%65y=abc123"
            .parse()
            .expect("uri");
        assert_eq!(
            loggable_uri(&uri),
            "/integrations/alertmanager?key=REDACTED"
        );
        let uri = "/integrations/alertmanager?ke%79=abc123&x=1&key"
            .parse()
            .expect("uri");
        assert_eq!(
            loggable_uri(&uri),
            "/integrations/alertmanager?key=REDACTED&x=1&key=REDACTED"
        );
        let uri = "/alerts?q=monkey&limit=5".parse().expect("uri");
        assert_eq!(loggable_uri(&uri), "/alerts?q=monkey&limit=5");
        let uri = "/incidents".parse().expect("uri");
        assert_eq!(loggable_uri(&uri), "/incidents");
    }
}
