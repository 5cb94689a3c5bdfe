//! Reference servers as real processes of the `imas-server` binary, for the
//! tests where several nodes share one database.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Client;

/// A running `imas-server` process, killed (SIGKILL) when dropped.
pub struct Node {
    pub base: String,
    pub child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free at the moment.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Starts `imas-server` with the environment `env` (on top of the test run's,
/// less `MONGODB_URL`: the database is the one `env` names) on a free port,
/// and waits until `/healthz` answers.
pub async fn start(env: &[(&str, String)]) -> Node {
    spawn(env, &["MONGODB_URL"]).await
}

/// Like [`start`], on the embedded default: the test run's `MONGODB_URL`,
/// `REDIS_URL` and `REDIS_HOST` removed too (its in-process queue; the
/// database is the one `env` names).
pub async fn start_alone(env: &[(&str, String)]) -> Node {
    spawn(env, &["MONGODB_URL", "REDIS_URL", "REDIS_HOST"]).await
}

async fn spawn(env: &[(&str, String)], removed: &[&str]) -> Node {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_imas-server"));
    for name in removed {
        command.env_remove(name);
    }
    let child = command
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn imas-server");
    let mut node = Node {
        base: format!("http://127.0.0.1:{port}"),
        child,
    };
    let http = Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = node.child.try_wait() {
            panic!("imas-server exited at start-up ({status}); its stderr is above");
        }
        if let Ok(r) = http.get(format!("{}/healthz", node.base)).send().await
            && r.status().is_success()
        {
            return node;
        }
        assert!(Instant::now() < deadline, "imas-server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
