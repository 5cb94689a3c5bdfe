//! A real Prometheus Alertmanager (Debian's `prometheus-alertmanager` 0.25)
//! posting to IMAS's `POST /integrations/alertmanager` (SPEC §4), on SQLite
//! with IMAS on TLS (Alertmanager trusts the test CA by `tls_config.ca_file`)
//! and on PostgreSQL (`DATABASE_URL`) over plain HTTP. The test writes
//! Alertmanager's configuration (a webhook receiver with the integration key
//! as `http_config.authorization.credentials`, `group_wait: 1s`, clustering
//! off, its own storage), posts alerts to its `/api/v2/alerts`, then posts
//! them again with `endsAt` in the past: the incident opens with its alert and
//! labels, a second alert of the group joins it, and once both resolve the
//! incident resolves itself. Waits poll the IMAS API up to a deadline.

#![cfg(all(feature = "http", feature = "sqlite"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::ingest::{self, audit, service_with_key};
use common::tls::TestCa;
use common::{Backend, Database, TestServer};
use reqwest::Client;
use serde_json::{Value, json};

const ALERTMANAGER: &str = "prometheus-alertmanager";
/// How long Alertmanager gets to deliver a notification and IMAS to show it.
const DELIVERY: Duration = Duration::from_secs(30);

fn alertmanager_installed() -> bool {
    let found = Command::new(ALERTMANAGER)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ingest::tool(
        found,
        "Prometheus Alertmanager (prometheus-alertmanager)",
        "apt-get install prometheus-alertmanager",
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A running Alertmanager, killed when dropped.
struct Alertmanager {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The configuration the test writes: every alert to one webhook receiver,
/// IMAS's, grouped by `alertname`, sent a second after its group starts and
/// again a second after each change.
fn config_yaml(url: &str, key: &str, ca_file: Option<&Path>) -> String {
    let tls = match ca_file {
        Some(ca) => format!(
            "\n          tls_config:\n            ca_file: {}",
            ca.display()
        ),
        None => String::new(),
    };
    format!(
        r#"route:
  receiver: imas
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: imas
    webhook_configs:
      - url: "{url}"
        send_resolved: true
        http_config:
          authorization:
            credentials: "{key}"{tls}
"#
    )
}

impl Alertmanager {
    async fn start(imas_base: &str, key: &str, ca_file: Option<&Path>) -> Alertmanager {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("alertmanager-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("data")).expect("Alertmanager directory");
        let config = dir.join("alertmanager.yml");
        let url = format!("{imas_base}/integrations/alertmanager");
        std::fs::write(&config, config_yaml(&url, key, ca_file)).expect("write config");
        let port = free_port();
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn prometheus-alertmanager");
        let mut am = Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let http = Client::new();
        let ready = format!("{}/-/ready", am.base);
        ingest::eventually(Duration::from_secs(30), "Alertmanager ready", || {
            if let Ok(Some(status)) = am.child.try_wait() {
                panic!("Alertmanager exited at start-up ({status}); its stderr is above");
            }
            let req = http.get(&ready).send();
            async move {
                match req.await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(r.status().to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        am
    }

    /// Posts alerts to `/api/v2/alerts`, as Prometheus does.
    async fn post(&self, alerts: Value) {
        let res = Client::new()
            .post(format!("{}/api/v2/alerts", self.base))
            .json(&alerts)
            .send()
            .await
            .expect("post alerts");
        let status = res.status();
        assert!(
            status.is_success(),
            "{status}: {}",
            res.text().await.unwrap_or_default()
        );
    }

    /// Alertmanager's alerts (each with its fingerprint).
    async fn alerts(&self) -> Vec<Value> {
        Client::new()
            .get(format!("{}/api/v2/alerts", self.base))
            .send()
            .await
            .expect("alerts")
            .json()
            .await
            .expect("alerts JSON")
    }
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The alert of `instance` (severity `severity`), firing since `starts`; with
/// `ends` in the past it is resolved.
fn alert(
    instance: &str,
    severity: &str,
    starts: chrono::DateTime<Utc>,
    ends: Option<chrono::DateTime<Utc>>,
) -> Value {
    let mut a = json!({
        "labels": {"alertname": "DiskFull", "instance": instance, "severity": severity, "team": "storage"},
        "annotations": {"summary": "Disk almost full", "description": "Less than 5% left"},
        "generatorURL": format!("http://prometheus.example.com/graph?instance={instance}"),
        "startsAt": rfc3339(starts),
    });
    if let Some(ends) = ends {
        a["endsAt"] = json!(rfc3339(ends));
    }
    a
}

async fn alertmanager_to_imas(backend: Backend, tls: bool) {
    if !alertmanager_installed() {
        return;
    }
    let Some(db) = Database::fresh(backend) else {
        return;
    };
    let ca = TestCa::new();
    let tls_vars = if tls { ca.vars() } else { Vec::new() };
    let vars: Vec<(&str, &str)> = tls_vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = TestServer::start_in(&db, &vars).await;
    if tls {
        server = server.with_client(ca.client());
    }
    let (http, base) = (server.http.clone(), server.base.clone());
    assert_eq!(base.starts_with("https://"), tls, "{base}");
    let admin = server.token("admin", common::ADMIN_PASSWORD).await;
    let (service, key) = service_with_key(&http, &base, &admin, "storage", "alertmanager").await;
    let am = Alertmanager::start(&base, &key, tls.then_some(ca.ca_path.as_path())).await;

    let incidents_url = format!("{base}/incidents?serviceId={service}");
    let incidents = || {
        let (http, base, url, admin) = (
            http.clone(),
            base.clone(),
            incidents_url.clone(),
            admin.clone(),
        );
        async move { ingest::all(&http, &base, &url, &admin).await }
    };
    let alerts_of = |incident: String| {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        async move {
            let url = format!("{base}/incidents/{incident}/alerts");
            ingest::all(&http, &base, &url, &admin).await
        }
    };

    // One alert fires: an incident opens with it.
    let started = Utc::now() - chrono::Duration::seconds(30);
    am.post(json!([alert("db-1", "warning", started, None)]))
        .await;
    let incident = ingest::eventually(DELIVERY, "the incident of the first alert", || async {
        let list = incidents().await;
        match list.as_slice() {
            [one] if one["alertCount"] == json!(1) => Ok(one.clone()),
            _ => Err(format!("{list:?}")),
        }
    })
    .await;
    let id = incident["id"].as_str().expect("id").to_string();
    assert_eq!(incident["source"], json!("alertmanager"), "{incident}");
    assert_eq!(incident["status"], json!("open"), "{incident}");
    assert_eq!(incident["title"], json!("Disk almost full"), "{incident}");
    assert_eq!(
        incident["description"],
        json!("Less than 5% left"),
        "{incident}"
    );
    assert_eq!(
        incident["priority"],
        json!("medium"),
        "warning -> medium: {incident}"
    );
    assert_eq!(incident["reportedBy"], Value::Null, "{incident}");
    let alerts = alerts_of(id.clone()).await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let first = &alerts[0];
    assert_eq!(first["status"], json!("triggered"), "{first}");
    assert_eq!(first["labels"]["instance"], json!("db-1"), "{first}");
    assert_eq!(first["labels"]["alertname"], json!("DiskFull"), "{first}");
    assert_eq!(first["labels"]["team"], json!("storage"), "{first}");
    assert!(
        first
            .to_string()
            .contains("http://prometheus.example.com/graph?instance=db-1"),
        "generatorURL kept: {first}"
    );
    // Its dedup key is the group's key and the alert's fingerprint.
    let fingerprint = am
        .alerts()
        .await
        .into_iter()
        .find(|a| a["labels"]["instance"] == json!("db-1"))
        .and_then(|a| a["fingerprint"].as_str().map(str::to_string))
        .expect("Alertmanager's fingerprint of db-1");
    assert_eq!(
        first["dedupKey"],
        json!(format!("{{}}:{{alertname=\"DiskFull\"}}/{fingerprint}")),
        "{first}"
    );

    // A second alert of the same group joins the incident.
    am.post(json!([alert("db-2", "critical", started, None)]))
        .await;
    let joined = ingest::eventually(DELIVERY, "the second alert joining", || async {
        let list = incidents().await;
        match list.as_slice() {
            [one] if one["alertCount"] == json!(2) => Ok(one.clone()),
            _ => Err(format!("{list:?}")),
        }
    })
    .await;
    assert_eq!(joined["id"], json!(id), "the same incident");
    let alerts = alerts_of(id.clone()).await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert!(
        alerts
            .iter()
            .any(|a| a["labels"]["instance"] == json!("db-2")),
        "{alerts:#?}"
    );

    // Both resolve (endsAt in the past): the incident resolves itself.
    let ended = Utc::now() - chrono::Duration::seconds(5);
    am.post(json!([
        alert("db-1", "warning", started, Some(ended)),
        alert("db-2", "critical", started, Some(ended)),
    ]))
    .await;
    let resolved = ingest::eventually(DELIVERY, "the incident resolving itself", || async {
        let list = incidents().await;
        match list.as_slice() {
            [one] if one["status"] == json!("resolved") => Ok(one.clone()),
            _ => Err(format!("{list:?}")),
        }
    })
    .await;
    assert_eq!(resolved["id"], json!(id));
    assert_eq!(resolved["alertCount"], json!(0), "{resolved}");
    let alerts = alerts_of(id.clone()).await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    for a in &alerts {
        assert_eq!(a["status"], json!("resolved"), "{a}");
        assert!(a["resolvedAt"].is_string(), "{a}");
    }
    assert_eq!(
        audit(&http, &base, &admin, "ALERT_TRIGGERED").await.len(),
        2
    );
    assert_eq!(audit(&http, &base, &admin, "ALERT_RESOLVED").await.len(), 2);
    let auto = audit(&http, &base, &admin, "INCIDENT_AUTO_RESOLVED").await;
    assert_eq!(auto.len(), 1, "{auto:#?}");
    assert_eq!(auto[0]["actor"], json!("SYSTEM"), "{}", auto[0]);
    assert_eq!(auto[0]["target"], json!(id), "{}", auto[0]);

    drop(am);
    server.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_on_sqlite_over_tls() {
    alertmanager_to_imas(Backend::Sqlite, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_on_postgres() {
    alertmanager_to_imas(Backend::Postgres, false).await;
}
