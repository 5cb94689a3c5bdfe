//! Run with: cargo run --release --example report_bench -- [--backend sqlite|postgres] [--incidents N] [--format csv|pdf]
//!
//! Report benchmark over HTTP, end to end: loads N incidents (default 100,000)
//! into a database as production writes them (through the engine, with their
//! audit entries, outbox rows and delivered notifications; see
//! `support/load.rs`), then starts the reference server on that database as a
//! separate process (this program re-run as `report_bench serve`, which runs
//! `imas::server::main()`, exactly what the `imas-server` binary runs), signs in
//! as an admin over HTTP and downloads `GET /reports/incidents?format=csv|pdf`
//! with `Accept-Encoding: gzip`. The client checks the answer is 200 and
//! gzip-encoded, decodes the whole body as it arrives and counts the incidents
//! in it (CSV: the records; PDF: the distinct incident ids in `pdftotext`'s
//! text, so `pdftotext` must be installed), and fails unless it counts N.
//!
//! Prints, per backend and format: the time from request to the last decoded
//! byte, incidents per second, compressed and decoded sizes, and the server's
//! resident memory after start-up and sign-in (`VmRSS`) and its peak after the
//! report (`VmHWM`, from `/proc/<pid>/status`). A fresh server runs each
//! format, so each peak is that format's. Run at two N to see whether memory
//! grows with N.
//!
//! Backends: SQLite (a fresh file under target/), and PostgreSQL when
//! `DATABASE_URL` is set (a fresh schema, dropped at the end); `--backend`
//! picks one. `IMAS_SMOKE=1`: 2,000 incidents, the same checks (for CI).

#[path = "support/load.rs"]
mod load;

use std::collections::HashSet;
use std::io::Write;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use imas::ports::Store;
use imas::store_sqlx::{PostgresStore, SqliteStore};

type Failure = Box<dyn std::error::Error + Send + Sync>;

const JWT_SECRET: &str = "report benchmark secret, at least 32 bytes long";

fn smoke() -> bool {
    std::env::var("IMAS_SMOKE").is_ok_and(|v| v == "1")
}

struct Args {
    backends: Vec<String>,
    incidents: usize,
    formats: Vec<String>,
}

fn args() -> Result<Args, Failure> {
    let mut a = Args {
        backends: vec!["sqlite".into()],
        incidents: if smoke() { 2_000 } else { 100_000 },
        formats: vec!["csv".into(), "pdf".into()],
    };
    if std::env::var("DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        a.backends.push("postgres".into());
    }
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => a.backends = vec![value()?],
            "--incidents" => a.incidents = value()?.parse()?,
            "--format" => a.formats = vec![value()?],
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(a)
}

/// `VmRSS` and `VmHWM` of a process, in MB.
fn memory_of(pid: u32) -> Result<(f64, f64), Failure> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<f64, Failure> {
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .ok_or(format!("no {name} in /proc/{pid}/status"))?
            .parse()?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The server child process; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the loaded data is, as the server is told it.
struct Database {
    url: String,
    schema: Option<String>,
}

async fn start_server(db: &Database) -> Result<Server, Failure> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("serve")
        .current_dir(std::env::temp_dir())
        .env("PORT", port.to_string())
        .env("DATABASE_URL", &db.url)
        .env("JWT_SECRET", JWT_SECRET)
        .env("RUST_LOG", "warn")
        .env_remove("MONGODB_URL")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_HOST")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(schema) = &db.schema {
        cmd.env("IMAS_DB_SCHEMA", schema);
    }
    let server = Server {
        child: cmd.spawn()?,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{}/healthz", server.base)).send().await
            && r.status().is_success()
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the server did not answer /healthz within 30 s".into())
}

struct Measured {
    took: Duration,
    compressed: usize,
    body: Vec<u8>,
}

/// Downloads one report with `Accept-Encoding: gzip`, decoding as it arrives.
async fn download(server: &Server, token: &str, format: &str) -> Result<Measured, Failure> {
    // Decompression is done here, not by reqwest, to see what the server sent.
    let client = reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate()
        .build()?;
    let started = Instant::now();
    let answer = client
        .get(format!("{}/reports/incidents?format={format}", server.base))
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT_ENCODING, "gzip")
        .send()
        .await?;
    if !answer.status().is_success() {
        return Err(format!(
            "GET /reports/incidents?format={format}: {}",
            answer.status()
        )
        .into());
    }
    let encoding = answer
        .headers()
        .get(reqwest::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_string();
    if encoding != "gzip" {
        return Err(format!("the report came with Content-Encoding {encoding}, not gzip").into());
    }
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let mut compressed = 0usize;
    let mut chunks = answer.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        compressed += chunk.len();
        decoder.write_all(&chunk)?;
    }
    let body = decoder.finish()?;
    Ok(Measured {
        took: started.elapsed(),
        compressed,
        body,
    })
}

/// The incidents in a CSV report: its records after the header.
fn csv_incidents(body: &[u8]) -> Result<usize, Failure> {
    let mut reader = csv::Reader::from_reader(body);
    let columns = reader.headers()?.len();
    let mut n = 0;
    for record in reader.records() {
        let record = record?;
        if record.len() != columns {
            return Err(format!("record {n} has {} fields, not {columns}", record.len()).into());
        }
        uuid::Uuid::parse_str(&record[0])?;
        n += 1;
    }
    Ok(n)
}

/// The incidents in a PDF report: the distinct incident ids in its text (the
/// other ids in it are the assignees', all `users`).
fn pdf_incidents(body: &[u8], users: &HashSet<uuid::Uuid>) -> Result<usize, Failure> {
    if !body.starts_with(b"%PDF-") {
        return Err("the PDF report does not start with %PDF-".into());
    }
    let mut text = Command::new("pdftotext")
        .args(["-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("pdftotext (poppler-utils) is needed to check the PDF: {e}"))?;
    let mut stdin = text.stdin.take().ok_or("pdftotext's stdin")?;
    let body = body.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&body));
    let out = text.wait_with_output()?;
    feeder.join().map_err(|_| "feeding pdftotext")??;
    if !out.status.success() {
        return Err(format!("pdftotext failed: {}", out.status).into());
    }
    let ids: HashSet<uuid::Uuid> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.len() == 36)
        .filter_map(|w| uuid::Uuid::parse_str(w).ok())
        .filter(|id| !users.contains(id))
        .collect();
    Ok(ids.len())
}

async fn sign_in(server: &Server) -> Result<String, Failure> {
    let answer = reqwest::Client::new()
        .post(format!("{}/auth/login", server.base))
        .json(&serde_json::json!({"username": load::ADMIN.0, "password": load::ADMIN.1}))
        .send()
        .await?;
    if !answer.status().is_success() {
        return Err(format!("sign-in: {}", answer.status()).into());
    }
    let body: serde_json::Value = answer.json().await?;
    Ok(body["token"]
        .as_str()
        .ok_or("sign-in: no token in the answer")?
        .to_string())
}

async fn bench(backend: &str, a: &Args) -> Result<(), Failure> {
    let (db, store, pg): (Database, Arc<dyn Store>, Option<PostgresStore>) = match backend {
        "sqlite" => {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join(format!("report_bench-{}.db", uuid::Uuid::new_v4().simple()));
            let url = format!("sqlite://{}", path.display());
            let store = SqliteStore::connect(&url).await?;
            (Database { url, schema: None }, Arc::new(store), None)
        }
        "postgres" => {
            let url = std::env::var("DATABASE_URL")?;
            let schema = format!("imas_report_{}", uuid::Uuid::new_v4().simple());
            // The load's sessions do not wait for each commit's WAL flush: the
            // same rows in a fraction of the time (the server is a plain one).
            let store = PostgresStore::connect_in_schema(
                &load::with_options(&url, &[("synchronous_commit", "off")]),
                &schema,
            )
            .await?;
            (
                Database {
                    url,
                    schema: Some(schema),
                },
                Arc::new(store.clone()),
                Some(store),
            )
        }
        other => return Err(format!("unknown backend {other}").into()),
    };
    let started = Instant::now();
    let shape = load::Shape {
        incidents: a.incidents,
        due_every: None,
        rare: None,
        deliver: true,
    };
    let loaded = load::load(store.clone(), &shape).await?;
    let mut users = HashSet::new();
    for role in [imas::model::Role::Admin, imas::model::Role::Engineer] {
        for u in store.users_with_role(role).await? {
            users.insert(u.id.0);
        }
    }
    drop(loaded);
    drop(store);
    println!(
        "{backend}: {} incidents loaded through the engine in {:.1?}",
        a.incidents,
        started.elapsed()
    );
    let result = async {
        for format in &a.formats {
            let server = start_server(&db).await?;
            let token = sign_in(&server).await?;
            let (rss_start, _) = memory_of(server.child.id())?;
            let m = download(&server, &token, format).await?;
            let (_, peak) = memory_of(server.child.id())?;
            let counted = match format.as_str() {
                "csv" => csv_incidents(&m.body)?,
                "pdf" => pdf_incidents(&m.body, &users)?,
                other => return Err(format!("unknown format {other}").into()),
            };
            if counted != a.incidents {
                return Err(format!(
                    "{format}: counted {counted} incidents in the report, expected {}",
                    a.incidents
                )
                .into());
            }
            println!(
                "| {backend} | {format} | {} | {:.0} ms | {:.0} incidents/s | {:.2} MB gzip, {:.2} MB decoded | {rss_start:.1} MB | {peak:.1} MB |",
                a.incidents,
                m.took.as_secs_f64() * 1e3,
                counted as f64 / m.took.as_secs_f64(),
                m.compressed as f64 / 1e6,
                m.body.len() as f64 / 1e6,
            );
        }
        Ok::<_, Failure>(())
    }
    .await;
    match (&pg, &db.schema) {
        (Some(pg), Some(schema)) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(pg.pool())
                .await?;
        }
        _ => {
            if let Some(path) = db.url.strip_prefix("sqlite://") {
                for suffix in ["", "-wal", "-shm", ".imas-lock"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
    }
    result
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return imas::server::main().await;
    }
    let run = async {
        let a = args()?;
        println!(
            "| backend | format | incidents | request to last decoded byte | throughput | body | server RSS after start-up and sign-in | server peak RSS (VmHWM) |"
        );
        for backend in &a.backends {
            bench(backend, &a).await?;
        }
        Ok::<_, Failure>(())
    };
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("report_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
