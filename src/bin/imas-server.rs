//! Run with: cargo run --bin imas-server
//!
//! The IMAS reference server. With no configuration it keeps its data in the
//! SQLite file `imas.db` and delivers notifications through the in-process queue,
//! with the SLA monitor and the notification worker running in the background.
//! Configuration (environment or `.env`): see the README. SIGTERM or Ctrl-C
//! drains in-flight requests and background steps, then exits.
//! (`cargo run --example server` is the same program.)

#[tokio::main]
async fn main() -> std::process::ExitCode {
    imas::server::main().await
}
