//! Report export benchmark: `cargo run --release --example report_bench -- <csv|pdf> <rows> [out-file]`.
//!
//! Feeds `rows` incidents in pages of 500, as the store's cursor hands them to
//! the HTTP route, and writes the report, discarding the bytes unless a file is
//! named. The pages come from 500 incidents made before the clock starts (the
//! original's figures are for data already in memory), reused page after page
//! so that memory does not grow with `rows`. Prints the time, the output size and the process's peak resident
//! memory (VmHWM). Run one format per process so the peak is that format's.

use std::io::Write;
use std::time::Instant;

use imas_core::model::{Incident, Priority, Status, UserId};
use imas_core::report::{PdfMeta, PdfReport, csv_header, csv_rows};
use imas_core::sla::add_ms;

const PAGE: usize = 500;

fn incidents(start: usize, n: usize, users: &[UserId]) -> Vec<Incident> {
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("date")
        .to_utc();
    (start..start + n)
        .map(|k| {
            let created = add_ms(t0, k as i64 * 60_000);
            let mut i = Incident::open(
                format!(
                    "Incident {k}: database latency above threshold on node-{} — \"p99\", retries",
                    k % 17
                ),
                users[k % users.len()],
                created,
            );
            i.priority = Priority::ALL[k % Priority::ALL.len()];
            i.status = Status::ALL[k % Status::ALL.len()];
            i.assigned_to = (k % 3 != 0).then(|| users[(k + 1) % users.len()]);
            i.sla_deadline = add_ms(created, 4 * 3_600_000);
            i.sla_breached = k % 7 == 0;
            i.escalation_level = (k % 4) as u32;
            if k % 2 == 0 {
                i.acknowledged_at = Some(add_ms(created, 600_000));
            }
            i
        })
        .collect()
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let format = args.next().unwrap_or_else(|| "csv".into());
    let rows: usize = args.next().unwrap_or_else(|| "100000".into()).parse()?;
    let mut out: Box<dyn Write> = match args.next() {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::sink()),
    };
    let users: Vec<UserId> = (0..50).map(|_| UserId::new()).collect();
    let page = incidents(0, PAGE, &users);
    let started = Instant::now();
    let mut bytes = 0usize;
    let mut emit = |b: &[u8]| -> std::io::Result<()> {
        bytes += b.len();
        out.write_all(b)
    };
    match format.as_str() {
        "csv" => {
            emit(&csv_header()?)?;
            for start in (0..rows).step_by(PAGE) {
                emit(&csv_rows(&page[..PAGE.min(rows - start)])?)?;
            }
        }
        "pdf" => {
            let mut report = PdfReport::new(PdfMeta {
                filters: vec![("priority".into(), "all".into())],
                generated_at: chrono::Utc::now(),
            })?;
            for start in (0..rows).step_by(PAGE) {
                report.push(&page[..PAGE.min(rows - start)])?;
                emit(&report.take())?;
            }
            emit(&report.finish()?)?;
        }
        other => return Err(format!("unknown format {other:?}: csv or pdf").into()),
    }
    let elapsed = started.elapsed();
    println!(
        "{format}: {rows} incidents in {:.0} ms, {:.1} MB written, peak RSS {:.1} MB",
        elapsed.as_secs_f64() * 1000.0,
        bytes as f64 / 1e6,
        peak_rss_mb()
    );
    Ok(())
}
