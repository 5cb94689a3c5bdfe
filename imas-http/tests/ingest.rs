//! Alert ingestion over a real socket (`imas_http::serve::serve`): events
//! sent one after another on one kept-alive HTTP/1.1 connection, the alerts
//! they opened read back gzip-compressed by a real client (reqwest, which asks
//! for gzip), an Alertmanager notification with its key in the query.

use std::sync::Arc;
use std::time::Duration;

use imas_core::Engine;
use imas_core::auth::JwtKeys;
use imas_core::memory::MemoryStore;
use imas_http::serve::{ServeOptions, serve};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const PASSWORD: &str = "a long and unusual passphrase";

struct Running {
    base: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The API served on a free port.
async fn start(engine: Engine) -> Running {
    let app = imas_http::router(engine);
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

/// One HTTP/1.1 answer read off `stream`: status, headers (names in lower
/// case) and the body of its `content-length`.
async fn read_answer(stream: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut line = String::new();
    stream.read_line(&mut line).await.expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        stream.read_line(&mut line).await.expect("header");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (k, v) = header.split_once(':').expect("header line");
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no content-length: {headers:?}"));
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.expect("body");
    (status, headers, body)
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
    // reqwest, with its `gzip` feature, asks for gzip and decodes it.
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
    // HTTP/1.1 keep-alive, on a raw socket so that nothing but the server
    // decides: every event is sent on the same connection and answered on it.
    let stream = tokio::net::TcpStream::connect(srv.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    let mut stream = BufReader::new(stream);
    for n in 0..40 {
        let event = json!({
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": format!("host-{n}/disk"),
            "payload": {
                "summary": format!("disk {n} is full, and this summary is long enough to make a list of them worth compressing"),
                "source": format!("host-{n}"),
                "severity": "warning",
                "custom_details": { "free_bytes": n }
            }
        })
        .to_string();
        let request = format!(
            "POST /v2/enqueue HTTP/1.1\r\nhost: imas\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{event}",
            event.len()
        );
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("write");
        let (status, headers, body) = read_answer(&mut stream).await;
        assert_eq!(status, 202, "event {n}");
        assert!(
            !headers
                .iter()
                .any(|(k, v)| k == "connection" && v == "close"),
            "{headers:?}"
        );
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            body,
            json!({ "status": "success", "message": "Event processed", "dedup_key": format!("host-{n}/disk") })
        );
    }
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
    assert_eq!(
        alerts[39]["details"]["custom_details"]["free_bytes"], 0,
        "{}",
        alerts[39]
    );
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
