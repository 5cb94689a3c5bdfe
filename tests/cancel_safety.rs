//! Cancel-safety over HTTP: the reference server (a real process of the
//! `imas-server` binary, on SQLite, PostgreSQL and MongoDB) takes thousands of
//! `PUT /incidents/{id}` whose clients reset the connection (SO_LINGER 0) a
//! random 0..6 ms after sending, so that hyper drops the request's future
//! wherever it is. Afterwards every incident's version history equals its audit
//! entries, every intent of a committed change was delivered (it was in the
//! outbox), and the server logged no `transaction in progress` notice (nor did
//! PostgreSQL, in its own log, for the server's connections, where that log is
//! readable).

#![cfg(all(
    feature = "http",
    feature = "sqlite",
    feature = "postgres",
    feature = "mongo",
    feature = "server-bin"
))]

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imas::Engine;
use imas::model::{AuditAction, AuditEntry, IncidentId, PageRequest, UserId};
use imas::ports::{ManualClock, Store};
use imas::store_sqlx::{PostgresStore, SqliteStore};
use imas_core::testkit::cancel::audit_of;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SECRET: &str = "a cancel-safety secret of 32+ bytes";

/// A server process whose output (stdout and stderr) is kept, line by line.
struct Node {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn start(env: &[(&str, String)]) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let mut child = Command::new(env!("CARGO_BIN_EXE_imas-server"))
            // The database is the one given here, whatever the test run has;
            // the in-process queue.
            .env_remove("DATABASE_URL")
            .env_remove("MONGODB_URL")
            .env_remove("REDIS_URL")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PORT", port.to_string())
            .env("JWT_SECRET", SECRET)
            .env("IMAS_ADMIN_USERNAME", "admin")
            .env("IMAS_ADMIN_PASSWORD", "admin password for cancel")
            // Every notice PostgreSQL sends (sqlx logs them under this target).
            .env("RUST_LOG", "info,sqlx=warn,sqlx::postgres::notice=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn imas-server");
        let log = Arc::new(Mutex::new(Vec::new()));
        let out: Vec<Box<dyn std::io::Read + Send>> = vec![
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for stream in out {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().expect("log").push(line);
                }
            });
        }
        let node = Node {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        let http = Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{}/healthz", node.base())).send().await
                && r.status().is_success()
            {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "imas-server did not come up; its output:\n{}",
                node.log.lock().expect("log").join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits (at most 30 s) for the process to drain and exit.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "imas-server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last warnings and errors the server logged.
    fn warnings(&self) -> Vec<String> {
        let log = self.output();
        let bad: Vec<String> = log
            .into_iter()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        bad[bad.len().saturating_sub(5)..].to_vec()
    }

    fn output(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

/// Where a server keeps its data, and a store on it for the checks.
enum Db {
    Sqlite(String),
    Postgres(String, String),
    Mongo(String, String),
}

impl Db {
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Db::Sqlite(url) => vec![("DATABASE_URL", url.clone())],
            Db::Postgres(url, schema) => vec![
                ("DATABASE_URL", url.clone()),
                ("IMAS_DB_SCHEMA", schema.clone()),
            ],
            Db::Mongo(url, name) => vec![("MONGODB_URL", mongo_url_with(url, name))],
        }
    }

    async fn store(&self) -> Arc<dyn Store> {
        match self {
            Db::Sqlite(url) => Arc::new(SqliteStore::connect(url).await.expect("sqlite")),
            Db::Postgres(url, schema) => Arc::new(
                PostgresStore::connect_in_schema(url, schema)
                    .await
                    .expect("postgres"),
            ),
            Db::Mongo(url, name) => Arc::new(
                imas::store_mongo::MongoStore::connect_to(url, name)
                    .await
                    .expect("mongodb"),
            ),
        }
    }
}

/// `url` naming the database `name` (the server takes it from the URL).
fn mongo_url_with(url: &str, name: &str) -> String {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let rest = head.strip_prefix("mongodb://").unwrap_or(head);
    let hosts = rest.split('/').next().unwrap_or(rest);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("mongodb://{hosts}/{name}{query}")
}

/// PostgreSQL's server log (as Debian's `pg_ctlcluster` writes it, under
/// `/var/log/postgresql`), from where it stood when the test began. `None`
/// (said on stderr) when it is not readable here: the server's own output is
/// checked regardless.
struct PgLog {
    files: Vec<(std::path::PathBuf, u64)>,
}

impl PgLog {
    fn open(db: &Db) -> Option<PgLog> {
        if !matches!(db, Db::Postgres(..)) {
            return None;
        }
        let files: Vec<_> = std::fs::read_dir("/var/log/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .filter_map(|p| {
                std::fs::File::open(&p)
                    .ok()?
                    .metadata()
                    .ok()
                    .map(|m| (p, m.len()))
            })
            .collect();
        if files.is_empty() {
            eprintln!("PostgreSQL's log is not readable here; checking the server's output only");
            return None;
        }
        Some(PgLog { files })
    }

    /// `transaction in progress` lines logged since, by the backends `pids`
    /// (the default `log_line_prefix` starts `%m [%p]`).
    fn notices_of(&self, pids: &[i32]) -> Vec<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut out = Vec::new();
        for (path, from) in &self.files {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(path)
                && f.seek(SeekFrom::Start(*from)).is_ok()
            {
                let _ = f.read_to_string(&mut text);
            }
            out.extend(
                text.lines()
                    .filter(|l| l.contains("transaction in progress"))
                    .filter(|l| pids.iter().any(|p| l.contains(&format!("[{p}]"))))
                    .map(str::to_string),
            );
        }
        out
    }
}

/// The backends IMAS servers opened on this database since `since` (this
/// test's server, and any other started meanwhile).
async fn server_backends(url: &str, since: chrono::DateTime<chrono::Utc>) -> Vec<i32> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("observer");
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'imas' AND backend_start >= $1",
    )
    .bind(since)
    .fetch_all(&mut conn)
    .await
    .expect("pg_stat_activity")
}

/// A tiny xorshift, seeded per run (and printed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Writes a whole `PUT` request, waits `delay`, then resets the connection
/// (SO_LINGER 0: an RST, not a FIN), whatever the server is doing with it.
async fn put_and_reset(addr: SocketAddr, path: &str, token: &str, body: &str, delay: Duration) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    let request = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(request.as_bytes()).await.is_err() {
        return;
    }
    tokio::time::sleep(delay).await;
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

async fn json_call(
    http: &Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = http.request(method, url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The fields an `INCIDENT_UPDATED` entry says were changed.
fn changed_fields(e: &AuditEntry) -> Vec<String> {
    e.description
        .rsplit_once("updated: ")
        .map(|(_, fields)| fields.split(", ").map(str::to_string).collect())
        .unwrap_or_default()
}

/// `requests` PUTs, nine in ten reset after a random delay below `max_delay`.
async fn reset_flood(db: Db, requests: usize, max_delay: Duration) {
    let started = Instant::now();
    let pg_log = PgLog::open(&db);
    let since = chrono::Utc::now();
    let mut node = Node::start(&db.env()).await;
    let http = Client::new();
    let base = node.base();
    let (status, v) = json_call(
        &http,
        reqwest::Method::POST,
        format!("{base}/auth/login"),
        None,
        json!({"username": "admin", "password": "admin password for cancel"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let token = v["token"].as_str().expect("token").to_string();
    // Two people the admin assigns incidents to (each assignment is an intent).
    let mut people = Vec::new();
    for name in ["cancel-ana", "cancel-ben"] {
        let (status, v) = json_call(
            &http,
            reqwest::Method::POST,
            format!("{base}/auth/register"),
            None,
            json!({"name": name, "username": name, "email": format!("{name}@example.com"),
                   "password": "a long unusual passphrase 7291"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let id: UserId = serde_json::from_value(v["id"].clone()).expect("user id");
        people.push(id);
    }
    let mut incidents: Vec<IncidentId> = Vec::new();
    for n in 0..24 {
        let (status, v) = json_call(
            &http,
            reqwest::Method::POST,
            format!("{base}/incidents"),
            Some(&token),
            json!({"title": format!("cancel {n}"), "priority": "low"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        incidents.push(serde_json::from_value(v["id"].clone()).expect("incident id"));
    }

    // The flood: each request changes the title, and may change the status
    // and the assignee. One in ten is an ordinary request, awaited.
    let seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
    eprintln!("reset_flood: seed {seed:#x}");
    let mut rng = Rng(seed);
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    let mut awaited = (0, 0);
    for n in 0..requests {
        let id = incidents[rng.below(incidents.len() as u64) as usize];
        let mut body = json!({"title": format!("cancel put {n}")});
        match rng.below(3) {
            0 => body["status"] = json!("in-progress"),
            1 => body["status"] = json!("on-hold"),
            _ => {}
        }
        if rng.below(2) == 0 {
            body["assignedTo"] = json!(people[rng.below(2) as usize]);
        }
        let path = format!("/incidents/{id}");
        if n % 10 == 0 {
            let (status, v) = json_call(
                &http,
                reqwest::Method::PUT,
                format!("{base}{path}"),
                Some(&token),
                body,
            )
            .await;
            match status {
                StatusCode::OK => awaited.0 += 1,
                // A dropped request's change landed between this one's read
                // and its commit.
                StatusCode::CONFLICT => awaited.1 += 1,
                other => panic!(
                    "an ordinary PUT answered {other}: {v}; the server's warnings:\n{}",
                    node.warnings().join("\n")
                ),
            }
            continue;
        }
        let permit = Arc::clone(&limit).acquire_owned().await.expect("permit");
        let delay = Duration::from_micros(rng.below(max_delay.as_micros() as u64));
        let (token, body) = (token.clone(), body.to_string());
        let addr = node.addr;
        tasks.spawn(async move {
            put_and_reset(addr, &path, &token, &body, delay).await;
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    let flood = started.elapsed();

    // Afterwards every incident takes an ordinary change (retried while a
    // dropped one is still landing) and reads back.
    for id in &incidents {
        let mut tries = 0;
        loop {
            let (status, v) = json_call(
                &http,
                reqwest::Method::PUT,
                format!("{base}/incidents/{id}"),
                Some(&token),
                json!({"title": format!("cancel final {id}")}),
            )
            .await;
            if status == StatusCode::OK {
                break;
            }
            assert_eq!(status, StatusCode::CONFLICT, "{v}");
            tries += 1;
            assert!(tries < 50, "incident {id}: 50 conflicts in a row");
        }
    }
    // PostgreSQL's own log, where readable: the backends of this server.
    let pg_pids = match &db {
        Db::Postgres(url, _) if pg_log.is_some() => server_backends(url, since).await,
        _ => Vec::new(),
    };
    node.stop();
    let pg_notices = pg_log.map(|l| l.notices_of(&pg_pids)).unwrap_or_default();
    let output = node.output();
    assert!(
        output.iter().any(|l| l.contains("IMAS listening")),
        "the server's output was captured"
    );
    let notices: Vec<&String> = output
        .iter()
        .filter(|l| l.contains("transaction in progress"))
        .collect();

    // The checks, on a store of the test's own (the server has stopped): the
    // intents still in the outbox are delivered first, with a clock far ahead
    // so that the stopped server's leases are over.
    let store = db.store().await;
    let far = chrono::Utc::now() + chrono::Duration::days(3650);
    let engine = Engine::builder(Arc::clone(&store))
        .clock(Arc::new(ManualClock::new(far)))
        .build()
        .expect("engine");
    engine.flush_notifications().await.expect("flush");
    let mut delivered: HashMap<IncidentId, BTreeSet<String>> = HashMap::new();
    for person in &people {
        let mut page = PageRequest::first(200);
        loop {
            let p = store.list_notifications(*person, page).await.expect("list");
            for n in p.items {
                if let Some(i) = n.incident_id {
                    delivered.entry(i).or_default().insert(n.key);
                }
            }
            match p.next {
                Some(c) => page.cursor = Some(c),
                None => break,
            }
        }
    }
    let mut wrong = Vec::new();
    let mut versions = 0;
    for id in &incidents {
        let incident = store.get_incident(*id).await.expect("get").expect("there");
        let v = incident.version;
        versions += v - 1;
        let log = audit_of(&*store, *id).await;
        let updates: Vec<&AuditEntry> = log
            .iter()
            .filter(|e| e.action == AuditAction::IncidentUpdated)
            .collect();
        let statuses = log
            .iter()
            .filter(|e| e.action == AuditAction::StatusChanged)
            .count();
        let said = |field: &str| {
            updates
                .iter()
                .filter(|e| changed_fields(e).iter().any(|f| f == field))
                .count()
        };
        if updates.len() as i64 != v - 1 {
            wrong.push(format!(
                "incident {id}: version {v} but {} INCIDENT_UPDATED entries",
                updates.len()
            ));
        }
        if statuses != said("status") {
            wrong.push(format!(
                "incident {id}: {statuses} STATUS_CHANGED entries for {} updates of its status",
                said("status")
            ));
        }
        let notified = delivered.get(id).map_or(0, BTreeSet::len);
        if notified != said("assignedTo") {
            wrong.push(format!(
                "incident {id}: {notified} assignment notifications for {} assignments",
                said("assignedTo")
            ));
        }
    }
    eprintln!(
        "reset_flood: {requests} PUTs ({} awaited: {} ok, {} conflicts) in {flood:?}, \
         {versions} changes committed, {} notices ({} in PostgreSQL's log for its {} \
         backends), {:?} in all",
        awaited.0 + awaited.1,
        awaited.0,
        awaited.1,
        notices.len(),
        pg_notices.len(),
        pg_pids.len(),
        started.elapsed()
    );
    assert!(
        wrong.is_empty(),
        "changes present in part:\n{}",
        wrong.join("\n")
    );
    assert!(
        notices.is_empty(),
        "the server logged {} `transaction in progress` notices, e.g. {:?}",
        notices.len(),
        notices.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        pg_notices.is_empty(),
        "PostgreSQL logged {} `transaction in progress` warnings for this server's \
         connections, e.g. {:?}",
        pg_notices.len(),
        pg_notices.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the test is bounded to two minutes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_puts_on_postgres() {
    let Some(url) = imas_core::testkit::service_url("DATABASE_URL") else {
        return;
    };
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    reset_flood(Db::Postgres(url, schema), 4_000, Duration::from_millis(6)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_puts_on_sqlite() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cancel-{}.db", uuid::Uuid::new_v4()));
    let db = Db::Sqlite(format!("sqlite://{}", path.display()));
    reset_flood(db, 4_000, Duration::from_millis(6)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_puts_on_mongodb() {
    let Some(url) = imas_core::testkit::service_url("MONGODB_URL") else {
        return;
    };
    let name = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    // The test server (SecantusDB) is slower: later resets reach the commit.
    reset_flood(Db::Mongo(url, name), 1_000, Duration::from_millis(40)).await;
}
