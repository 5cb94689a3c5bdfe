//! Alert ingestion over a real socket (`imas_http::serve::serve`) with a real
//! HTTP client (reqwest): events sent one after another on one kept-alive
//! connection, the alerts they opened read back gzip-compressed, an
//! Alertmanager notification with its key in the query.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use imas_core::Engine;
use imas_core::auth::JwtKeys;
use imas_core::memory::MemoryStore;
use imas_http::serve::{ServeOptions, serve};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const PASSWORD: &str = "a long and unusual passphrase";

struct Running {
    base: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The API, plus `/whoami` (the client's address as the server sees it, to
/// tell one connection from another), served on a free port.
async fn start(engine: Engine) -> Running {
    let app = Router::new()
        .route(
            "/whoami",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .merge(imas_http::router(engine));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, ServeOptions::default(), async move {
        let _ = rx.await;
    }));
    Running {
        base: format!("http://{addr}"),
        stop,
        task,
    }
}

async fn engine() -> (Engine, String) {
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .jwt_keys(JwtKeys::new(&[9; 32], Duration::from_secs(3600)).expect("keys"))
        .build()
        .expect("engine");
    engine
        .ensure_admin("admin", PASSWORD, "admin@example.com")
        .await
        .expect("admin");
    let token = engine.login("admin", PASSWORD).await.expect("login");
    (engine, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_over_one_kept_alive_connection_and_alerts_read_back_gzipped() {
    let (engine, admin) = engine().await;
    let srv = start(engine).await;
    // reqwest keeps connections alive and, with its `gzip` feature, asks for
    // gzip and decodes it.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    let url = |path: &str| format!("{}{path}", srv.base);
    let whoami = || async {
        client
            .get(url("/whoami"))
            .send()
            .await
            .expect("whoami")
            .text()
            .await
            .expect("text")
    };
    let service: Value = client
        .post(url("/services"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "payments" }))
        .send()
        .await
        .expect("service")
        .json()
        .await
        .expect("json");
    let created = client
        .post(url(&format!(
            "/services/{}/integrations",
            service["id"].as_str().expect("id")
        )))
        .bearer_auth(&admin)
        .json(&json!({ "name": "monitoring", "kind": "events-v2" }))
        .send()
        .await
        .expect("integration");
    assert_eq!(created.status(), StatusCode::CREATED);
    let key = created.json::<Value>().await.expect("json")["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let first = whoami().await;
    for n in 0..40 {
        let answer = client
            .post(url("/v2/enqueue"))
            .json(&json!({
                "routing_key": key,
                "event_action": "trigger",
                "dedup_key": format!("host-{n}/disk"),
                "payload": {
                    "summary": format!("disk {n} is full, and this summary is long enough to make a list of them worth compressing"),
                    "source": format!("host-{n}"),
                    "severity": "warning",
                    "custom_details": { "free_bytes": n }
                }
            }))
            .send()
            .await
            .expect("enqueue");
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let body: Value = answer.json().await.expect("json");
        assert_eq!(
            body,
            json!({ "status": "success", "message": "Event processed", "dedup_key": format!("host-{n}/disk") })
        );
    }
    // Every request went over the first connection.
    assert_eq!(whoami().await, first, "the connection was not kept alive");
    // The list is compressed for a client that asks (the decoding client
    // reads it as JSON; a raw one sees the gzip bytes).
    let alerts: Value = client
        .get(url("/alerts?limit=40"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("alerts")
        .json()
        .await
        .expect("json");
    let alerts = alerts.as_array().expect("alerts");
    assert_eq!(alerts.len(), 40);
    assert_eq!(alerts[0]["dedupKey"], "host-39/disk");
    assert_eq!(alerts[39]["details"]["free_bytes"], 0, "{}", alerts[39]);
    let raw = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client");
    let answer = raw
        .get(url("/alerts?limit=40"))
        .bearer_auth(&admin)
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("alerts");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer
            .headers()
            .get(CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    let bytes = answer.bytes().await.expect("body");
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    let _ = srv.stop.send(());
    srv.task.await.expect("task").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_notification_over_the_socket() {
    let (engine, admin) = engine().await;
    let srv = start(engine).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", srv.base);
    let service: Value = client
        .post(url("/services"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "payments" }))
        .send()
        .await
        .expect("service")
        .json()
        .await
        .expect("json");
    let created: Value = client
        .post(url(&format!(
            "/services/{}/integrations",
            service["id"].as_str().expect("id")
        )))
        .bearer_auth(&admin)
        .json(&json!({ "name": "alertmanager", "kind": "alertmanager" }))
        .send()
        .await
        .expect("integration")
        .json()
        .await
        .expect("json");
    let key = created["key"].as_str().expect("key");
    let notification = json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"HighLatency\"}",
        "status": "firing",
        "receiver": "imas",
        "groupLabels": { "alertname": "HighLatency" },
        "commonLabels": { "alertname": "HighLatency", "severity": "warning" },
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": "HighLatency", "severity": "warning", "instance": "web-1" },
            "annotations": { "runbook": "https://runbooks/latency" },
            "startsAt": "2026-12-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "791cec13fcba0368"
        }]
    });
    let unauthorized = client
        .post(url("/integrations/alertmanager"))
        .json(&notification)
        .send()
        .await
        .expect("post");
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    let answer = client
        .post(url(&format!("/integrations/alertmanager?key={key}")))
        .json(&notification)
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), StatusCode::OK);
    let taken: Value = answer.json().await.expect("json");
    assert_eq!(taken["opened"], 1);
    let incident = taken["incidentId"].as_str().expect("incident");
    let alerts: Value = client
        .get(url(&format!("/incidents/{incident}/alerts")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("alerts")
        .json()
        .await
        .expect("json");
    assert_eq!(alerts[0]["labels"]["instance"], "web-1");
    assert_eq!(
        alerts[0]["dedupKey"],
        "{}:{alertname=\"HighLatency\"}/791cec13fcba0368"
    );
    let _ = srv.stop.send(());
    srv.task.await.expect("task").expect("serve");
}
