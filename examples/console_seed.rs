//! Run by `benches/console_load.sh`: cargo run --release --example console_seed -- --url sqlite://PATH --incidents 100000
//!
//! Fills a fresh SQLite database for the console benchmark the way production
//! writes it (through the engine: incident rows, audit entries, outbox rows and
//! the delivered notifications, over 90 days of history; see
//! `support/load.rs`, shared with `store_scale` and `report_bench`), then
//! prints one line of JSON the script reads: the admin the load created
//! (`username`, `password`), and how many incidents there are in each status.
//! The server is started on the file afterwards, by the script.
//!
//! `IMAS_SMOKE=1`: 2,000 incidents by default (for CI).

#[path = "support/load.rs"]
mod load;

use std::process::ExitCode;
use std::sync::Arc;

use imas::store_sqlx::SqliteStore;

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn run() -> Result<(), Failure> {
    let smoke = std::env::var("IMAS_SMOKE").is_ok_and(|v| v == "1");
    let mut incidents = if smoke { 2_000 } else { 100_000 };
    let mut url = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--incidents" => incidents = value()?.parse()?,
            "--url" => url = Some(value()?),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let url = url.ok_or("--url sqlite://PATH is required")?;
    if !url.starts_with("sqlite://") {
        return Err("--url: a sqlite:// URL".into());
    }
    let store = SqliteStore::connect(&url).await?;
    let started = std::time::Instant::now();
    let loaded = load::load(
        Arc::new(store),
        &load::Shape {
            incidents,
            due_every: None,
            rare: None,
            deliver: true,
        },
    )
    .await?;
    let by_status: serde_json::Map<String, serde_json::Value> = loaded
        .by_status
        .iter()
        .map(|(s, n)| (s.as_str().to_string(), (*n).into()))
        .collect();
    eprintln!(
        "console_seed: {incidents} incidents loaded through the engine in {:.1?}",
        started.elapsed()
    );
    println!(
        "{}",
        serde_json::json!({
            "username": load::ADMIN.0,
            "password": load::ADMIN.1,
            "incidents": incidents,
            "byStatus": by_status,
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("console_seed: {e}");
            ExitCode::FAILURE
        }
    }
}
