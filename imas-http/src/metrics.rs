//! `GET /metrics` (SPEC §8) in the Prometheus text exposition format (0.0.4),
//! written with `prometheus-client`, the Prometheus project's own Rust client:
//! its registry is a value, not a process-wide global, so every router (and
//! every server a test starts in one process) counts on its own.
//!
//! Three kinds of series:
//! - request counts and latencies, by method, route template (axum's
//!   [`MatchedPath`], e.g. `/incidents/{id}`; `unmatched` for the 404
//!   fallback, so the label set stays bounded whatever paths clients try) and
//!   status, counted by [`track`], a middleware;
//! - alert events received, by integration kind and outcome, counted by the
//!   ingestion handlers ([`HttpMetrics::alert_received`]);
//! - the engine's state, read at scrape time by [`Engine::operations`]: open
//!   incidents by priority and status, SLA breaches, the SLA monitor's lag, the
//!   outbox backlog and age, the queue, deliveries by channel and outcome.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use imas_core::Engine;
use imas_core::metrics::Operations;
use imas_core::model::IntegrationKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Request latency buckets, in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    integration: &'static str,
    outcome: &'static str,
}

/// What became of an event an integration posted (a `POST /v2/enqueue`
/// event, an Alertmanager notification): the `outcome` label of
/// `imas_alerts_received_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlertOutcome {
    /// Taken (2xx).
    Accepted,
    /// Refused as malformed or invalid (400, 413; for events v2 an unknown
    /// key is one of its problems).
    Invalid,
    /// Refused for a missing or bad key (401, Alertmanager).
    Unauthorized,
    /// Over the key's rate limit (429).
    RateLimited,
    /// Not taken for a failure of IMAS (5xx): the sender retries.
    Failed,
}

impl AlertOutcome {
    const ALL: [AlertOutcome; 5] = [
        AlertOutcome::Accepted,
        AlertOutcome::Invalid,
        AlertOutcome::Unauthorized,
        AlertOutcome::RateLimited,
        AlertOutcome::Failed,
    ];

    /// The outcome an answer's status says.
    pub(crate) fn of(status: StatusCode) -> Self {
        match status.as_u16() {
            200..=299 => AlertOutcome::Accepted,
            401 | 403 => AlertOutcome::Unauthorized,
            429 => AlertOutcome::RateLimited,
            400..=499 => AlertOutcome::Invalid,
            _ => AlertOutcome::Failed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            AlertOutcome::Accepted => "accepted",
            AlertOutcome::Invalid => "invalid",
            AlertOutcome::Unauthorized => "unauthorized",
            AlertOutcome::RateLimited => "rate_limited",
            AlertOutcome::Failed => "failed",
        }
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The request series of one router.
#[derive(Debug)]
pub(crate) struct HttpMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    alerts: Family<AlertLabels, Counter>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "imas_http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "imas_http_request_duration_seconds",
            "Time from receiving an HTTP request to sending its response head, by method, route template and status",
            latency.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        // Every series exists from the start (at 0), so that a rate over them
        // is defined before the first event and the family is always listed.
        for kind in IntegrationKind::ALL {
            for outcome in AlertOutcome::ALL {
                alerts
                    .get_or_create(&AlertLabels {
                        integration: kind.as_str(),
                        outcome: outcome.as_str(),
                    })
                    .inc_by(0);
            }
        }
        registry.register(
            "imas_alerts_received",
            "Alert events posted by integrations to this node (an events-v2 event, an Alertmanager notification), by integration kind and outcome",
            alerts.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            alerts,
        }
    }
}

impl HttpMetrics {
    /// Counts one event an integration of `kind` posted.
    pub(crate) fn alert_received(&self, kind: IntegrationKind, outcome: AlertOutcome) {
        self.alerts
            .get_or_create(&AlertLabels {
                integration: kind.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
    }
}

/// A method as a label: the standard ones by name, anything else `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts and times every request by its route template.
pub(crate) async fn track(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    metrics.requests.get_or_create(&labels).inc();
    metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Whether `Authorization` carries `Bearer <token>`, compared in constant time.
pub(crate) fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| {
        h.strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
    }) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpenLabels {
    priority: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

fn gauge(value: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    g
}

fn seconds(d: std::time::Duration) -> Gauge<f64, std::sync::atomic::AtomicU64> {
    let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    g.set(d.as_secs_f64());
    g
}

/// The engine's state as a registry of its own, built for one scrape.
fn operations_registry(ops: &Operations) -> Registry {
    let mut r = Registry::default();
    let open = Family::<OpenLabels, Gauge>::default();
    for (priority, status, n) in &ops.open_incidents {
        open.get_or_create(&OpenLabels {
            priority: priority.as_str(),
            status: status.as_str(),
        })
        .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    r.register(
        "imas_incidents_open",
        "Incidents not resolved or closed, by priority and status",
        open,
    );
    r.register(
        "imas_incidents_open_breached",
        "Open incidents whose SLA is breached",
        gauge(ops.open_breached),
    );
    let breaches = Family::<TargetLabels, Counter>::default();
    for (target, n) in [
        ("resolution", ops.counters.breaches),
        ("response", ops.counters.response_breaches),
    ] {
        breaches.get_or_create(&TargetLabels { target }).inc_by(n);
    }
    r.register(
        "imas_sla_breaches",
        "SLA breaches recorded by this node's sweeps since it started, by target",
        breaches,
    );
    r.register(
        "imas_sla_monitor_lag_seconds",
        "How far the SLA monitor is behind: now minus the earliest due instant when that is past, else 0",
        seconds(ops.sla_monitor_lag),
    );
    r.register(
        "imas_outbox_pending",
        "Notification intents in the outbox not yet delivered",
        gauge(ops.outbox_pending),
    );
    r.register(
        "imas_outbox_oldest_pending_age_seconds",
        "Age of the oldest undelivered outbox entry (0 when none)",
        seconds(ops.outbox_oldest_age),
    );
    let queue = Family::<StateLabels, Gauge>::default();
    for (state, n) in [
        ("ready", ops.queue.ready),
        ("scheduled", ops.queue.delayed),
        ("reserved", ops.queue.in_flight),
    ] {
        queue
            .get_or_create(&StateLabels { state })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    r.register(
        "imas_queue_jobs",
        "Notification jobs in the queue, by state",
        queue,
    );
    r.register(
        "imas_queue_dead_letters",
        "Notification jobs that exhausted their attempts",
        gauge(ops.queue.dead),
    );
    let deliveries = Family::<DeliveryLabels, Counter>::default();
    for (channel, outcome, n) in &ops.counters.deliveries {
        deliveries
            .get_or_create(&DeliveryLabels {
                channel,
                outcome: outcome.as_str(),
            })
            .inc_by(*n);
    }
    r.register(
        "imas_deliveries",
        "Notification deliveries by this node since it started, by channel and outcome",
        deliveries,
    );
    let pruned = Family::<KindLabels, Counter>::default();
    for (kind, n) in [
        ("outbox", ops.counters.pruned.outbox),
        ("receipts", ops.counters.pruned.receipts),
    ] {
        pruned.get_or_create(&KindLabels { kind }).inc_by(n);
    }
    r.register(
        "imas_retention_pruned",
        "Delivered outbox rows and channel receipts removed by this node's retention since it started",
        pruned,
    );
    r
}

/// The exposition: request series, then the engine's state read now.
pub(crate) async fn render(engine: &Engine, http: &HttpMetrics) -> imas_core::Result<String> {
    let ops = engine.operations().await?;
    let mut out = String::with_capacity(8 * 1024);
    let encoded = prometheus_text::encode(&mut out, &http.registry)
        .and_then(|()| prometheus_text::encode(&mut out, &operations_registry(&ops)));
    encoded.map_err(|e| imas_core::Error::backend("metrics", e))?;
    Ok(out)
}

/// 503 for a backend that cannot be read (never a 500 from a scrape).
pub(crate) fn unavailable(e: &imas_core::Error) -> crate::ApiError {
    tracing::warn!(error = %e, "metrics: a backend is unreachable");
    crate::ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "metrics unavailable: a backend is unreachable",
    )
}
