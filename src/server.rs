//! The reference server: configuration from the environment (SPEC §3), the store
//! the URL names, the engine, its background loops (SLA monitor, notification
//! relay and worker) and the HTTP API, with a graceful shutdown that drains
//! in-flight requests and background steps. `examples/server.rs` runs it.

use std::future::Future;
use std::time::Duration;

use imas_core::auth::{DEFAULT_TOKEN_TTL, JwtKeys};
use imas_core::escalation::SlaEscalation;
use imas_core::limiter::RateLimit;
use imas_core::sla::SlaPolicy;
use imas_core::{Engine, EngineConfig, Error, Result};
use tokio::net::TcpListener;

/// Where the server keeps its data when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://imas.db";

/// The bootstrap admin from `IMAS_ADMIN_*`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapAdmin {
    /// `IMAS_ADMIN_USERNAME`.
    pub username: String,
    /// `IMAS_ADMIN_PASSWORD`.
    pub password: String,
    /// `IMAS_ADMIN_EMAIL` (default `<username>@imas.local`).
    pub email: String,
}

impl std::fmt::Debug for BootstrapAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapAdmin")
            .field("username", &self.username)
            .field("email", &self.email)
            .finish()
    }
}

/// The reference server's configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `PORT` (default 3000).
    pub port: u16,
    /// `DATABASE_URL` (default [`DEFAULT_DATABASE_URL`]).
    pub database_url: String,
    /// `MONGODB_URL`: when set, the MongoDB store (in the database the URL
    /// names, default `imas`) instead of `DATABASE_URL`'s.
    pub mongodb_url: Option<String>,
    /// `IMAS_DB_SCHEMA`: the PostgreSQL schema of IMAS's tables (default `imas`).
    pub db_schema: String,
    /// From `REDIS_URL`, or `REDIS_HOST` and `REDIS_PORT`; `None` is the
    /// in-process queue.
    pub redis_url: Option<String>,
    /// `IMAS_QUEUE_PREFIX`: the Redis key prefix. By default it is derived from
    /// `DATABASE_URL` and `IMAS_DB_SCHEMA`, so that deployments on different
    /// databases never take each other's jobs from a shared Redis.
    pub queue_prefix: String,
    /// From `IMAS_WEBHOOK_URL` and `IMAS_WEBHOOK_SECRET`: where notifications are
    /// also posted.
    pub webhook: Option<(String, String)>,
    /// From `IMAS_SMTP_URL` and `IMAS_SMTP_FROM`: notifications are also mailed.
    pub smtp: Option<(String, String)>,
    /// From `JWT_SECRET`; `None` is development mode (a random secret, said
    /// loudly), only allowed with SQLite: with a PostgreSQL or MongoDB store the
    /// configuration is an error without it.
    pub jwt: Option<JwtKeys>,
    /// From `IMAS_ADMIN_*`.
    pub admin: Option<BootstrapAdmin>,
    /// SLA policy, the engine's and the monitor's tunables.
    pub engine: EngineConfig,
    /// Longest sleep of the SLA monitor between sweeps.
    pub monitor_poll: Duration,
    /// Longest idle wait of the notification worker.
    pub notifier_poll: Duration,
    /// `IMAS_METRICS_TOKEN`: when set, `GET /metrics` requires it as a bearer
    /// token; unset, `/metrics` is open.
    pub metrics_token: Option<String>,
    /// `IMAS_RETENTION` (default 7 days, at least 1 hour): delivered outbox rows
    /// and channel receipts older than this are removed.
    pub retention: Duration,
    /// How often the retention step runs.
    pub retention_every: Duration,
    /// `IMAS_HEADER_TIMEOUT` (default 10s): longest time a client may take to
    /// send a request's headers, or to start its first request; an idle
    /// keep-alive connection is closed after it too.
    pub header_timeout: Duration,
    /// `IMAS_REQUEST_TIMEOUT` (default 30s): longest time a request may take
    /// until its answer starts (then 408).
    pub request_timeout: Duration,
    /// `IMAS_MAX_CONNECTIONS` (default 1024): most open connections; one more is
    /// closed at once.
    pub max_connections: usize,
    /// `IMAS_MAX_CONCURRENT_REQUESTS` (default 512): most requests handled at
    /// once; one more is answered 503 with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// From `IMAS_TLS_CERT` and `IMAS_TLS_KEY` (PEM files, both or neither):
    /// when set the server speaks HTTPS only. The files are read once, here.
    pub tls: Option<imas_http::serve::Tls>,
}

impl ServerConfig {
    /// Reads the process environment (after loading `.env`, if present).
    pub fn from_env() -> Result<Self> {
        let _ = dotenvy::dotenv();
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `var`. Every bad value is an error that
    /// names its variable and the expected form.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let get: Get<'_> = &get;
        let port = port(get)?;
        let db = database(get)?;
        let redis_url = redis_url(get)?;
        let queue_prefix = queue_prefix(get, &db);
        let webhook = webhook(get)?;
        let smtp = smtp(get)?;
        let jwt = jwt(get, &db)?;
        let admin = admin(get)?;
        let mut engine = engine_config(get)?;
        let metrics_token = get("IMAS_METRICS_TOKEN");
        let retention = retention(get)?;
        let http = http_limits(get)?;
        let tls = tls(get)?;
        engine.escalation = escalation(get)?;
        Ok(Self {
            port,
            database_url: db.database_url,
            mongodb_url: db.mongodb_url,
            db_schema: db.db_schema,
            redis_url,
            queue_prefix,
            webhook,
            smtp,
            jwt,
            admin,
            engine,
            monitor_poll: Duration::from_secs(1),
            notifier_poll: Duration::from_millis(250),
            metrics_token,
            retention,
            retention_every: Duration::from_secs(600),
            header_timeout: http.header_timeout,
            request_timeout: http.request_timeout,
            max_connections: http.max_connections,
            max_concurrent_requests: http.max_concurrent_requests,
            tls,
        })
    }
}

/// A variable's value, trimmed; `None` when unset or blank.
type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

/// `PORT` (default 3000).
fn port(get: Get<'_>) -> Result<u16> {
    match get("PORT") {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| Error::config("PORT", "expected a port number from 0 to 65535")),
        None => Ok(3000),
    }
}

/// The store's variables: `MONGODB_URL`, or `DATABASE_URL` and `IMAS_DB_SCHEMA`.
struct DatabaseVars {
    database_url: String,
    mongodb_url: Option<String>,
    db_schema: String,
}

impl DatabaseVars {
    /// Whether several nodes may share the store (PostgreSQL or MongoDB).
    fn is_shared(&self) -> bool {
        self.mongodb_url.is_some() || self.database_url.starts_with("postgres")
    }
}

/// `MONGODB_URL`, `DATABASE_URL` (default [`DEFAULT_DATABASE_URL`]) and
/// `IMAS_DB_SCHEMA` (default `imas`); at most one of the two URLs.
fn database(get: Get<'_>) -> Result<DatabaseVars> {
    let mongodb_url = get("MONGODB_URL");
    if let Some(url) = &mongodb_url {
        if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
            return Err(Error::config(
                "MONGODB_URL",
                "expected mongodb://host:port/database (or mongodb+srv://)",
            ));
        }
        if get("DATABASE_URL").is_some() {
            return Err(Error::config(
                "MONGODB_URL",
                "set either DATABASE_URL or MONGODB_URL, not both",
            ));
        }
        #[cfg(not(feature = "mongo"))]
        return Err(Error::config(
            "MONGODB_URL",
            "this build has no MongoDB store (feature `mongo`)",
        ));
    }
    let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
    let db_schema = get("IMAS_DB_SCHEMA").unwrap_or_else(|| "imas".to_string());
    if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
        return Err(Error::config(
            "DATABASE_URL",
            "expected sqlite://path or postgres://user@host/db",
        ));
    }
    Ok(DatabaseVars {
        database_url,
        mongodb_url,
        db_schema,
    })
}

/// `REDIS_URL`, or `REDIS_HOST` and `REDIS_PORT` (default 6379); `None` is the
/// in-process queue.
fn redis_url(get: Get<'_>) -> Result<Option<String>> {
    let url = match (get("REDIS_URL"), get("REDIS_HOST"), get("REDIS_PORT")) {
        (Some(url), _, _) => {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(Error::config("REDIS_URL", "expected redis://host:port"));
            }
            Some(url)
        }
        (None, Some(host), port) => {
            let port = port.unwrap_or_else(|| "6379".into());
            port.parse::<u16>()
                .map_err(|_| Error::config("REDIS_PORT", "expected a port number"))?;
            Some(format!("redis://{host}:{port}"))
        }
        (None, None, Some(_)) => {
            return Err(Error::config(
                "REDIS_HOST",
                "expected a host to go with REDIS_PORT",
            ));
        }
        (None, None, None) => None,
    };
    #[cfg(not(feature = "redis"))]
    if url.is_some() {
        return Err(Error::config(
            "REDIS_URL",
            "this build has no Redis support (feature `redis`)",
        ));
    }
    Ok(url)
}

/// `IMAS_QUEUE_PREFIX`, by default derived from the store's URL (and schema).
fn queue_prefix(get: Get<'_>, db: &DatabaseVars) -> String {
    get("IMAS_QUEUE_PREFIX").unwrap_or_else(|| {
        format!(
            "imas:{:016x}",
            fnv1a(&match &db.mongodb_url {
                Some(url) => url.clone(),
                None => format!("{}#{}", db.database_url, db.db_schema),
            })
        )
    })
}

/// `IMAS_WEBHOOK_URL` and `IMAS_WEBHOOK_SECRET`, both or neither.
fn webhook(get: Get<'_>) -> Result<Option<(String, String)>> {
    match (get("IMAS_WEBHOOK_URL"), get("IMAS_WEBHOOK_SECRET")) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::config(
            "IMAS_WEBHOOK_SECRET",
            "expected the secret that signs webhook calls",
        )),
        (None, Some(_)) => Err(Error::config(
            "IMAS_WEBHOOK_URL",
            "expected the URL to post notifications to",
        )),
        (Some(url), Some(secret)) => {
            #[cfg(feature = "webhook")]
            crate::channels::WebhookChannel::new(&url, secret.as_bytes(), Duration::from_secs(10))
                .map_err(in_variables(WEBHOOK_VARS))?;
            #[cfg(not(feature = "webhook"))]
            let _ = (url, secret);
            #[cfg(not(feature = "webhook"))]
            return Err(Error::config(
                "IMAS_WEBHOOK_URL",
                "this build has no webhook support (feature `webhook`)",
            ));
            #[cfg(feature = "webhook")]
            Ok(Some((url, secret)))
        }
    }
}

/// `IMAS_SMTP_URL` and `IMAS_SMTP_FROM`, both or neither.
fn smtp(get: Get<'_>) -> Result<Option<(String, String)>> {
    match (get("IMAS_SMTP_URL"), get("IMAS_SMTP_FROM")) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::config(
            "IMAS_SMTP_FROM",
            "expected the sender address",
        )),
        (None, Some(_)) => Err(Error::config("IMAS_SMTP_URL", "expected smtp://host:port")),
        (Some(url), Some(from)) => {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(Error::config(
                    "IMAS_SMTP_URL",
                    "expected smtp://host:port or smtps://host",
                ));
            }
            #[cfg(not(feature = "email"))]
            let _ = from;
            #[cfg(not(feature = "email"))]
            return Err(Error::config(
                "IMAS_SMTP_URL",
                "this build has no email support (feature `email`)",
            ));
            #[cfg(feature = "email")]
            Ok(Some((url, from)))
        }
    }
}

/// `JWT_SECRET`; required with a store that several nodes share.
fn jwt(get: Get<'_>, db: &DatabaseVars) -> Result<Option<JwtKeys>> {
    let jwt = get("JWT_SECRET")
        .map(|s| JwtKeys::new(s.as_bytes(), DEFAULT_TOKEN_TTL))
        .transpose()?;
    // Nodes sharing a PostgreSQL or MongoDB store must share the secret too:
    // the random development secret is only for the SQLite default.
    if jwt.is_none() && db.is_shared() {
        return Err(Error::config(
            "JWT_SECRET",
            "expected a secret of 32 bytes or more, shared by every node: it is required with a PostgreSQL or MongoDB store",
        ));
    }
    Ok(jwt)
}

/// `IMAS_ADMIN_USERNAME` and `IMAS_ADMIN_PASSWORD` (both or neither), and
/// `IMAS_ADMIN_EMAIL` (default `<username>@imas.local`).
fn admin(get: Get<'_>) -> Result<Option<BootstrapAdmin>> {
    match (get("IMAS_ADMIN_USERNAME"), get("IMAS_ADMIN_PASSWORD")) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::config(
            "IMAS_ADMIN_PASSWORD",
            "expected a password (8 characters or more)",
        )),
        (None, Some(_)) => Err(Error::config(
            "IMAS_ADMIN_USERNAME",
            "expected the admin's username",
        )),
        (Some(username), Some(password)) => {
            let email = get("IMAS_ADMIN_EMAIL").unwrap_or_else(|| format!("{username}@imas.local"));
            Ok(Some(BootstrapAdmin {
                username,
                password,
                email,
            }))
        }
    }
}

/// The engine's tunables but the escalation delays: `IMAS_SLA_*`,
/// `IMAS_CLAIM_LEASE`, `IMAS_LOGIN_*LIMIT`, `IMAS_REPORT_LIMIT`, `IMAS_HASH_*`.
fn engine_config(get: Get<'_>) -> Result<EngineConfig> {
    let defaults = EngineConfig::default();
    let sla = sla(get)?;
    let claim_lease = match get("IMAS_CLAIM_LEASE") {
        Some(d) => imas_core::sla::parse_duration(&d)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| Error::config("IMAS_CLAIM_LEASE", "expected a duration such as 30s"))?,
        None => defaults.claim_lease,
    };
    Ok(EngineConfig {
        sla,
        claim_lease,
        sign_in: sign_in(get)?,
        report_limit: match get("IMAS_REPORT_LIMIT") {
            Some(off) if off == "off" => None,
            Some(spec) => Some(RateLimit::parse("IMAS_REPORT_LIMIT", &spec)?),
            None => defaults.report_limit,
        },
        hash_pool: hash_pool(get)?,
        ingest_limit: ingest_limit(get, defaults.ingest_limit)?,
        ..defaults
    })
}

/// `IMAS_INGEST_RATE_LIMIT`: events a minute per integration key (default the
/// engine's, 1,000); 0 is no limit.
fn ingest_limit(get: Get<'_>, default: Option<RateLimit>) -> Result<Option<RateLimit>> {
    match get("IMAS_INGEST_RATE_LIMIT") {
        Some(n) => match n.parse::<u32>() {
            Ok(0) => Ok(None),
            Ok(max) => Ok(Some(RateLimit::new(max, Duration::from_secs(60)))),
            Err(_) => Err(Error::config(
                "IMAS_INGEST_RATE_LIMIT",
                "expected a whole number of events a minute per integration key, such as 1000 (0: no limit)",
            )),
        },
        None => Ok(default),
    }
}

/// `IMAS_SLA_POLICY`, `IMAS_SLA_RESPONSE_POLICY` and `IMAS_SLA_AT_RISK`.
fn sla(get: Get<'_>) -> Result<SlaPolicy> {
    let mut sla = SlaPolicy::default();
    if let Some(spec) = get("IMAS_SLA_POLICY") {
        sla = sla.with_resolution_spec("IMAS_SLA_POLICY", &spec)?;
    }
    if let Some(spec) = get("IMAS_SLA_RESPONSE_POLICY") {
        sla = sla.with_response_spec("IMAS_SLA_RESPONSE_POLICY", &spec)?;
    }
    if let Some(f) = get("IMAS_SLA_AT_RISK") {
        let fraction = f.parse::<f64>().map_err(|_| {
            Error::config(
                "IMAS_SLA_AT_RISK",
                "expected a number greater than 0 and at most 1, e.g. 0.8",
            )
        })?;
        sla = sla.with_at_risk_fraction(fraction).map_err(|_| {
            Error::config(
                "IMAS_SLA_AT_RISK",
                "expected a number greater than 0 and at most 1",
            )
        })?;
    }
    Ok(sla)
}

/// `IMAS_LOGIN_LIMIT` and `IMAS_LOGIN_ADDRESS_LIMIT`.
fn sign_in(get: Get<'_>) -> Result<imas_core::limiter::SignInLimits> {
    let mut sign_in = imas_core::limiter::SignInLimits::default();
    if let Some(spec) = get("IMAS_LOGIN_LIMIT") {
        sign_in.per_username = RateLimit::parse("IMAS_LOGIN_LIMIT", &spec)?;
    }
    if let Some(spec) = get("IMAS_LOGIN_ADDRESS_LIMIT") {
        sign_in.per_address = RateLimit::parse("IMAS_LOGIN_ADDRESS_LIMIT", &spec)?;
    }
    Ok(sign_in)
}

/// `IMAS_HASH_WORKERS` and `IMAS_HASH_QUEUE`.
fn hash_pool(get: Get<'_>) -> Result<imas_core::limiter::HashPoolConfig> {
    let mut hash_pool = imas_core::limiter::HashPoolConfig::default();
    hash_pool.workers = count(get, "IMAS_HASH_WORKERS", 1..=4096, hash_pool.workers)?;
    hash_pool.queue = count(get, "IMAS_HASH_QUEUE", 0..=4096, hash_pool.queue)?;
    Ok(hash_pool)
}

/// `IMAS_ESCALATION_DELAYS`.
fn escalation(get: Get<'_>) -> Result<SlaEscalation> {
    match get("IMAS_ESCALATION_DELAYS") {
        Some(spec) => SlaEscalation::parse_delays("IMAS_ESCALATION_DELAYS", &spec),
        None => Ok(SlaEscalation::default()),
    }
}

/// `IMAS_RETENTION` (default 7 days, at least [`MIN_RETENTION`]).
fn retention(get: Get<'_>) -> Result<Duration> {
    match get("IMAS_RETENTION") {
        Some(d) => imas_core::sla::parse_duration(&d)
            .filter(|d| *d >= MIN_RETENTION)
            .ok_or_else(|| {
                Error::config(
                    "IMAS_RETENTION",
                    "expected a duration of at least 1h, such as 7d or 36h",
                )
            }),
        None => Ok(imas_core::engine::DEFAULT_RETENTION),
    }
}

/// `IMAS_TLS_CERT` and `IMAS_TLS_KEY`, both or neither: the files read and
/// the certificate checked against its key now, so that a bad file stops the
/// server at start-up rather than failing every handshake.
fn tls(get: Get<'_>) -> Result<Option<imas_http::serve::Tls>> {
    const CERT: &str = "IMAS_TLS_CERT";
    const KEY: &str = "IMAS_TLS_KEY";
    const CERT_FILE: &str = "expected the path of a PEM file holding the certificate chain, the server's certificate first";
    const KEY_FILE: &str = "expected the path of a PEM file holding the private key of the certificate in IMAS_TLS_CERT";
    let (cert, key) = match (get(CERT), get(KEY)) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(Error::config(
                KEY,
                format!("{KEY_FILE}: IMAS_TLS_CERT is set, and HTTPS needs both"),
            ));
        }
        (None, Some(_)) => {
            return Err(Error::config(
                CERT,
                format!("{CERT_FILE}: IMAS_TLS_KEY is set, and HTTPS needs both"),
            ));
        }
        (Some(cert), Some(key)) => (cert, key),
    };
    let read = |var: &str, form: &str, path: &str| {
        std::fs::read(path)
            .map_err(|e| Error::config(var, format!("{form}; cannot read {path}: {e}")))
    };
    let cert = read(CERT, CERT_FILE, &cert)?;
    let key = read(KEY, KEY_FILE, &key)?;
    imas_http::serve::Tls::from_pem(&cert, &key)
        .map(Some)
        .map_err(in_variables([("cert", CERT), ("key", KEY)]))
}

/// The HTTP server's limits.
struct HttpLimits {
    header_timeout: Duration,
    request_timeout: Duration,
    max_connections: usize,
    max_concurrent_requests: usize,
}

/// `IMAS_HEADER_TIMEOUT`, `IMAS_REQUEST_TIMEOUT`, `IMAS_MAX_CONNECTIONS` and
/// `IMAS_MAX_CONCURRENT_REQUESTS` (defaults: the HTTP crate's).
fn http_limits(get: Get<'_>) -> Result<HttpLimits> {
    let (serving, routing) = (
        imas_http::serve::ServeOptions::default(),
        imas_http::RouterOptions::default(),
    );
    Ok(HttpLimits {
        header_timeout: duration(get, "IMAS_HEADER_TIMEOUT", serving.header_timeout)?,
        request_timeout: duration(get, "IMAS_REQUEST_TIMEOUT", routing.request_timeout)?,
        max_connections: count(
            get,
            "IMAS_MAX_CONNECTIONS",
            1..=MAX_LIMIT,
            serving.max_connections,
        )?,
        max_concurrent_requests: count(
            get,
            "IMAS_MAX_CONCURRENT_REQUESTS",
            1..=MAX_LIMIT,
            routing.max_concurrent_requests,
        )?,
    })
}

/// A whole number in `range`, or `default` when unset.
fn count(
    get: Get<'_>,
    name: &str,
    range: std::ops::RangeInclusive<usize>,
    default: usize,
) -> Result<usize> {
    match get(name) {
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                Error::config(
                    name,
                    format!(
                        "expected a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
        None => Ok(default),
    }
}

/// A duration above zero, or `default` when unset.
fn duration(get: Get<'_>, name: &str, default: Duration) -> Result<Duration> {
    match get(name) {
        Some(d) => imas_core::sla::parse_duration(&d)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                Error::config(name, "expected a duration above zero such as 10s or 500ms")
            }),
        None => Ok(default),
    }
}

/// The shortest `IMAS_RETENTION`: a delivered row must outlive every redelivery
/// of its job (the default retry policy gives up within the hour), or a
/// channel could send it twice.
const MIN_RETENTION: Duration = Duration::from_secs(3600);
/// Largest value of `IMAS_MAX_CONNECTIONS` and `IMAS_MAX_CONCURRENT_REQUESTS`.
const MAX_LIMIT: usize = 1_000_000;

/// FNV-1a, 64 bits: a hash that is the same in every build, for the default
/// queue prefix that all nodes of one deployment must agree on.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The store `MONGODB_URL` or `DATABASE_URL` names (PostgreSQL in
/// `IMAS_DB_SCHEMA`).
async fn store(config: &ServerConfig) -> Result<std::sync::Arc<dyn imas_core::ports::Store>> {
    #[cfg(feature = "mongo")]
    if let Some(url) = &config.mongodb_url {
        let store = imas_store_mongo::MongoStore::connect(url)
            .await
            .map_err(in_variable("MONGODB_URL"))?;
        return Ok(std::sync::Arc::new(store));
    }
    #[cfg(feature = "postgres")]
    if config.database_url.starts_with("postgres") {
        let store = imas_store_sqlx::PostgresStore::connect_in_schema(
            &config.database_url,
            &config.db_schema,
        )
        .await
        .map_err(in_variable("DATABASE_URL"))?;
        return Ok(std::sync::Arc::new(store));
    }
    imas_store_sqlx::connect(&config.database_url)
        .await
        .map_err(in_variable("DATABASE_URL"))
}

/// The settings [`crate::channels::WebhookChannel::new`] names, and the
/// variables that hold them.
#[cfg(feature = "webhook")]
const WEBHOOK_VARS: [(&str, &str); 2] = [
    ("url", "IMAS_WEBHOOK_URL"),
    ("secret", "IMAS_WEBHOOK_SECRET"),
];

/// The settings [`crate::channels::EmailChannel::new`] names, and the variables
/// that hold them.
#[cfg(feature = "email")]
const SMTP_VARS: [(&str, &str); 2] = [("smtp_url", "IMAS_SMTP_URL"), ("from", "IMAS_SMTP_FROM")];

/// A library's configuration error in the server's terms: each setting it
/// names (`(setting, variable)` in `vars`) becomes the variable that holds it.
/// Other errors pass unchanged.
fn in_variables<const N: usize>(
    vars: [(&'static str, &'static str); N],
) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Config { name, message } => {
            match vars.iter().find(|(setting, _)| *setting == name) {
                Some((_, var)) => Error::config(*var, message),
                None => Error::Config { name, message },
            }
        }
        e => e,
    }
}

/// A connect's configuration error in the server's terms: the setting an
/// adapter names (`url`, or `schema` for PostgreSQL) becomes the variable that
/// holds it, `var` for the URL.
fn in_variable(var: &'static str) -> impl Fn(Error) -> Error {
    in_variables([("url", var), (var, var), ("schema", "IMAS_DB_SCHEMA")])
}

/// Builds the engine the configuration describes (connecting to the store and
/// running its migrations) and creates the bootstrap admin.
pub async fn engine(config: &ServerConfig) -> Result<Engine> {
    let store = store(config).await?;
    let mut builder = Engine::builder(store.clone()).config(config.engine.clone());
    #[cfg(feature = "webhook")]
    if let Some((url, secret)) = &config.webhook {
        let channel =
            crate::channels::WebhookChannel::new(url, secret.as_bytes(), Duration::from_secs(10))
                .map_err(in_variables(WEBHOOK_VARS))?;
        builder = builder.channel(std::sync::Arc::new(channel));
    }
    #[cfg(feature = "email")]
    if let Some((url, from)) = &config.smtp {
        let channel =
            crate::channels::EmailChannel::new(url, from).map_err(in_variables(SMTP_VARS))?;
        builder = builder.channel(std::sync::Arc::new(channel));
    }
    #[cfg(feature = "redis")]
    if let Some(url) = &config.redis_url {
        let queue = imas_queue_redis::RedisQueue::connect_with_prefix(
            url,
            &config.queue_prefix,
            std::sync::Arc::new(imas_core::ports::SystemClock),
            imas_core::ports::RetryPolicy::default(),
        )
        .await
        .map_err(in_variable("REDIS_URL"))?;
        builder = builder.queue(std::sync::Arc::new(queue));
    }
    match &config.jwt {
        Some(keys) => builder = builder.jwt_keys(keys.clone()),
        None => tracing::warn!(
            "JWT_SECRET is not set: development mode with a random secret; tokens will not survive a restart"
        ),
    }
    let engine = builder.build()?;
    if let Some(admin) = &config.admin {
        match engine
            .ensure_admin(&admin.username, &admin.password, &admin.email)
            .await
        {
            Ok(Some(_)) => tracing::info!(username = %admin.username, "bootstrap admin created"),
            Ok(None) => {
                tracing::info!(username = %admin.username, "bootstrap admin already exists")
            }
            Err(Error::Validation { field, message }) => {
                let var = match field.as_str() {
                    "password" => "IMAS_ADMIN_PASSWORD",
                    "email" => "IMAS_ADMIN_EMAIL",
                    _ => "IMAS_ADMIN_USERNAME",
                };
                return Err(Error::config(var, message));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(engine)
}

/// Serves the API on `listener` with the engine's background loops until
/// `shutdown` resolves; then stops accepting, drains in-flight requests, lets the
/// loops finish their current step, and returns. If a background loop fails
/// first (a panic), it shuts down the same way and returns that failure.
pub async fn serve(
    engine: Engine,
    config: &ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_rx_for_http = stop_rx.clone();
    let mut loops = tokio::task::JoinSet::new();
    {
        let (engine, rx, poll) = (engine.clone(), stop_rx.clone(), config.monitor_poll);
        loops.spawn(async move {
            engine.run_sla_monitor(poll, rx).await;
            "the SLA monitor"
        });
    }
    {
        let (engine, rx, poll) = (engine.clone(), stop_rx.clone(), config.notifier_poll);
        loops.spawn(async move {
            engine.run_notifier(poll, rx).await;
            "the notification worker"
        });
    }
    {
        let (engine, rx) = (engine.clone(), stop_rx.clone());
        let (age, every) = (config.retention, config.retention_every);
        loops.spawn(async move {
            engine.run_retention(age, every, rx).await;
            "the retention loop"
        });
    }
    // A loop that ends before shutdown (it panicked) must not leave a server
    // answering requests with no SLA monitor or notification worker behind it:
    // the server shuts down and `serve` returns the failure, so a supervisor
    // restarts it.
    let (died_tx, died_rx) = tokio::sync::oneshot::channel::<()>();
    let supervisor = {
        let stopping = stop_rx.clone();
        tokio::spawn(async move {
            let mut died = Some(died_tx);
            let mut failure = None;
            while let Some(ended) = loops.join_next().await {
                let what = match ended {
                    Err(e) if e.is_panic() => format!("a background loop panicked: {e}"),
                    Err(e) => format!("a background loop was cancelled: {e}"),
                    Ok(_) if *stopping.borrow() => continue,
                    Ok(name) => format!("{name} stopped before shutdown"),
                };
                tracing::error!(error = %what, "background loop failed; shutting down");
                failure.get_or_insert(what);
                if let Some(tx) = died.take() {
                    let _ = tx.send(());
                }
            }
            failure
        })
    };
    let options = imas_http::RouterOptions {
        shutdown: Some(stop_rx_for_http),
        metrics_token: config.metrics_token.clone(),
        request_timeout: config.request_timeout,
        max_concurrent_requests: config.max_concurrent_requests,
        // The console's cookies are `Secure` when the server speaks HTTPS.
        secure_cookies: config.tls.is_some(),
        ..Default::default()
    };
    let app = imas_http::router_with(engine, options);
    let limits = imas_http::serve::ServeOptions {
        header_timeout: config.header_timeout,
        max_connections: config.max_connections,
        tls: config.tls.clone(),
    };
    // Shutting down: live streams and background loops are told first, then
    // the server stops accepting and drains the requests in flight.
    let signal = {
        let stop_tx = stop_tx.clone();
        async move {
            tokio::select! {
                () = shutdown => {}
                _ = died_rx => {}
            }
            let _ = stop_tx.send(true);
        }
    };
    let served = imas_http::serve::serve(listener, app, limits, signal).await;
    let _ = stop_tx.send(true);
    let failure = supervisor
        .await
        .unwrap_or_else(|e| Some(format!("the loop supervisor failed: {e}")));
    tracing::info!("stopped");
    match (served, failure) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(what)) => Err(std::io::Error::other(what)),
        (Ok(()), None) => Ok(()),
    }
}

/// The whole reference server: configuration from the environment, the engine,
/// the listener on `PORT`, serving until SIGTERM or Ctrl-C. Start-up problems are
/// errors that name their variable.
pub async fn run_from_env() -> std::result::Result<(), String> {
    let config = ServerConfig::from_env().map_err(|e| format!("cannot start: {e}"))?;
    let engine = engine(&config)
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    let listener = TcpListener::bind(("0.0.0.0", config.port))
        .await
        .map_err(|e| format!("cannot listen on port {} (PORT): {e}", config.port))?;
    tracing::info!(
        address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        scheme = if config.tls.is_some() { "https" } else { "http" },
        database = %config
            .mongodb_url
            .as_deref()
            .unwrap_or(&config.database_url)
            .split('@')
            .next_back()
            .unwrap_or_default(),
        "IMAS listening"
    );
    serve(engine, &config, listener, shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

/// The `main` of `imas-server` and `examples/server.rs`: logs to stderr
/// (`RUST_LOG`, default `info,sqlx=warn`), runs [`run_from_env`], and turns a
/// start-up problem into exit code 2 with its message.
#[cfg(feature = "server-bin")]
pub async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    match run_from_env().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imas: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: draining requests and background steps");
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "a configuration test secret of 32+ bytes";

    fn config(vars: &[(&str, &str)]) -> Result<ServerConfig> {
        ServerConfig::from_vars(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    }

    /// SPEC §7: with a PostgreSQL or MongoDB store the server refuses to start
    /// without `JWT_SECRET`; the random development secret is only for SQLite.
    #[test]
    fn a_shared_store_requires_jwt_secret() {
        for store in [
            ("DATABASE_URL", "postgres://postgres@127.0.0.1/imas"),
            ("DATABASE_URL", "postgresql://postgres@127.0.0.1/imas"),
            ("MONGODB_URL", "mongodb://127.0.0.1:27017/imas"),
            ("MONGODB_URL", "mongodb+srv://cluster.example.com/imas"),
        ] {
            let e = config(&[store]).expect_err(store.1);
            assert!(
                matches!(&e, Error::Config { name, .. } if name == "JWT_SECRET"),
                "{store:?}: {e}"
            );
            assert!(e.to_string().contains("JWT_SECRET"), "{e}");
            let blank = config(&[store, ("JWT_SECRET", "  ")]).expect_err("blank secret");
            assert!(
                matches!(&blank, Error::Config { name, .. } if name == "JWT_SECRET"),
                "{store:?} with a blank secret: {blank}"
            );
            let ok = config(&[store, ("JWT_SECRET", SECRET)]).expect("with a secret");
            assert!(ok.jwt.is_some(), "{store:?}");
        }
        for sqlite in [None, Some("sqlite://imas.db"), Some("sqlite::memory:")] {
            let vars: Vec<(&str, &str)> = sqlite
                .map(|url| ("DATABASE_URL", url))
                .into_iter()
                .collect();
            let dev = config(&vars).expect("SQLite without JWT_SECRET");
            assert!(dev.jwt.is_none(), "{sqlite:?}: development mode");
        }
    }

    /// A store's or queue's configuration error names the server's variable,
    /// whether the adapter names its setting (`url`, `schema`) or already the
    /// variable; other errors pass unchanged.
    #[test]
    fn connect_errors_name_the_variable() {
        let named = |var, name: &str| match in_variable(var)(Error::config(name, "bad")) {
            Error::Config { name, message } => {
                assert_eq!(message, "bad");
                name
            }
            e => panic!("{e}"),
        };
        assert_eq!(named("DATABASE_URL", "url"), "DATABASE_URL");
        assert_eq!(named("DATABASE_URL", "DATABASE_URL"), "DATABASE_URL");
        assert_eq!(named("DATABASE_URL", "schema"), "IMAS_DB_SCHEMA");
        assert_eq!(named("MONGODB_URL", "url"), "MONGODB_URL");
        assert_eq!(named("REDIS_URL", "url"), "REDIS_URL");
        assert_eq!(named("REDIS_URL", "retry policy"), "retry policy");
        let other = in_variable("DATABASE_URL")(Error::conflict("taken"));
        assert!(matches!(other, Error::Conflict { .. }), "{other}");
    }

    /// PEM files of a certificate for `127.0.0.1` and its key, in a fresh
    /// directory: (directory, certificate path, key path).
    fn pem_files() -> (std::path::PathBuf, String, String) {
        let dir = std::env::temp_dir().join(format!("imas-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        let path = |p: std::path::PathBuf| p.display().to_string();
        (dir, path(cert_path), path(key_path))
    }

    /// The variable a configuration error names, and its text.
    fn named(result: Result<ServerConfig>) -> (String, String) {
        match result {
            Err(Error::Config { name, message }) => (name, message),
            Err(e) => panic!("not a configuration error: {e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    /// SPEC §3: `IMAS_TLS_CERT` and `IMAS_TLS_KEY` together give HTTPS; one
    /// alone, a file that cannot be read, a file that is not PEM of the right
    /// kind, or a key that is not the certificate's stop the start-up naming
    /// the variable at fault and the expected form.
    #[test]
    fn tls_needs_both_files_readable_and_matching() {
        let (dir, cert, key) = pem_files();
        let ok = config(&[("IMAS_TLS_CERT", &cert), ("IMAS_TLS_KEY", &key)]).expect("TLS");
        assert!(ok.tls.is_some());
        assert!(config(&[]).expect("plain").tls.is_none());

        let (name, message) = named(config(&[("IMAS_TLS_CERT", &cert)]));
        assert_eq!(name, "IMAS_TLS_KEY");
        assert!(message.contains("PEM file"), "{message}");
        let (name, message) = named(config(&[("IMAS_TLS_KEY", &key)]));
        assert_eq!(name, "IMAS_TLS_CERT");
        assert!(message.contains("certificate chain"), "{message}");

        let missing = dir.join("absent.pem").display().to_string();
        let (name, message) = named(config(&[
            ("IMAS_TLS_CERT", &missing),
            ("IMAS_TLS_KEY", &key),
        ]));
        assert_eq!(name, "IMAS_TLS_CERT");
        assert!(message.contains(&missing), "{message}");
        let (name, _) = named(config(&[
            ("IMAS_TLS_CERT", &cert),
            ("IMAS_TLS_KEY", &missing),
        ]));
        assert_eq!(name, "IMAS_TLS_KEY");

        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not PEM at all\n").expect("write");
        let junk = junk.display().to_string();
        let (name, message) = named(config(&[("IMAS_TLS_CERT", &junk), ("IMAS_TLS_KEY", &key)]));
        assert_eq!(name, "IMAS_TLS_CERT");
        assert!(message.contains("BEGIN CERTIFICATE"), "{message}");
        let (name, message) = named(config(&[("IMAS_TLS_CERT", &cert), ("IMAS_TLS_KEY", &junk)]));
        assert_eq!(name, "IMAS_TLS_KEY");
        assert!(message.contains("PRIVATE KEY"), "{message}");
        // The two files swapped: neither holds what its variable needs.
        let (name, _) = named(config(&[("IMAS_TLS_CERT", &key), ("IMAS_TLS_KEY", &cert)]));
        assert_eq!(name, "IMAS_TLS_CERT");

        let (_, _, other_key) = pem_files();
        let (name, message) = named(config(&[
            ("IMAS_TLS_CERT", &cert),
            ("IMAS_TLS_KEY", &other_key),
        ]));
        assert_eq!(name, "IMAS_TLS_KEY");
        assert!(
            message.contains("private key of the server's certificate"),
            "{message}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// `IMAS_INGEST_RATE_LIMIT`: events a minute per integration key, default
    /// 1,000, 0 for none; anything but a whole number names the variable.
    #[test]
    fn ingest_rate_limit() {
        let minute = Duration::from_secs(60);
        let default = config(&[]).expect("default").engine.ingest_limit;
        assert_eq!(default, Some(RateLimit::new(1_000, minute)));
        let set = config(&[("IMAS_INGEST_RATE_LIMIT", "250")]).expect("250");
        assert_eq!(set.engine.ingest_limit, Some(RateLimit::new(250, minute)));
        let off = config(&[("IMAS_INGEST_RATE_LIMIT", "0")]).expect("0");
        assert_eq!(off.engine.ingest_limit, None);
        for bad in ["-1", "1.5", "many", "1000/1m", "99999999999"] {
            let (name, message) = named(config(&[("IMAS_INGEST_RATE_LIMIT", bad)]));
            assert_eq!(name, "IMAS_INGEST_RATE_LIMIT", "{bad}");
            assert!(message.contains("0: no limit"), "{bad}: {message}");
        }
    }
}
