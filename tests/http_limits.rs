//! The reference server's connection limits (SPEC §7), over real sockets with
//! raw HTTP/1.1 where the test needs to control every byte: a client that sends
//! its headers one byte a second is cut off after the header timeout, a silent
//! connection too, a connection over the cap is refused while the open ones are
//! served, a request over the concurrency cap is answered 503 with
//! `Retry-After`, a stalled request 408; and every answer carries `nosniff` and
//! `no-store`.

#![cfg(all(feature = "http", feature = "sqlite", feature = "csv"))]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use imas::server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one answer (with a `Content-Length` body) off `stream`; `None` when the
/// server closed the connection (or reset it) before a complete head.
async fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut answer = Answer {
        status,
        head,
        body: String::new(),
    };
    let length: usize = answer
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    answer.body = String::from_utf8_lossy(&body).to_string();
    Some(answer)
}

/// `GET path` on a kept-alive raw connection.
async fn get(stream: &mut TcpStream, path: &str) -> Option<Answer> {
    let request = format!("GET {path} HTTP/1.1\r\nhost: imas\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    read_answer(stream).await
}

/// Reads until the server closes the connection; what it sent on the way.
async fn read_until_closed(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_headers_one_byte_a_second_is_cut_off() {
    let Some(srv) = TestServer::start(Backend::Sqlite, &[("IMAS_HEADER_TIMEOUT", "1s")]).await
    else {
        return;
    };
    let request = b"GET /healthz HTTP/1.1\r\nhost: imas\r\nuser-agent: slowloris\r\n\r\n";
    let stream = TcpStream::connect(srv.addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    let closed = tokio::spawn(async move {
        let got = read_until_closed(&mut read).await;
        (got, started.elapsed())
    });
    let mut sent = 0;
    for byte in request {
        if closed.is_finished() || write.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        // The slow client's own pace: one byte a second.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (got, after) = closed.await.expect("reader");
    assert!(
        sent < request.len(),
        "the whole request was sent ({sent} bytes in {after:?}) before the server closed"
    );
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "cut off after {after:?}, expected the 1 s header timeout"
    );
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 408"),
        "no answer but a timeout: {got}"
    );
    // Meanwhile, a client that sends its request at once is answered.
    let mut fast = TcpStream::connect(srv.addr).await.expect("connect");
    assert_eq!(
        get(&mut fast, "/healthz").await.expect("answer").status,
        200
    );
    srv.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_or_half_a_preface_is_closed() {
    let Some(srv) = TestServer::start(Backend::Sqlite, &[("IMAS_HEADER_TIMEOUT", "1s")]).await
    else {
        return;
    };
    // Silence, then the start of the HTTP/2 preface (the server cannot yet tell
    // which protocol it is), then one complete request and silence after it.
    for sent in [
        &b""[..],
        b"PRI * HTTP/2",
        b"GET /healthz HTTP/1.1\r\nhost: imas\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
        let started = Instant::now();
        stream.write_all(sent).await.expect("write");
        let (mut read, _write) = stream.into_split();
        let got = tokio::time::timeout(Duration::from_secs(10), read_until_closed(&mut read))
            .await
            .unwrap_or_else(|_| panic!("{:?} kept open", String::from_utf8_lossy(sent)));
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(900) && after < Duration::from_secs(5),
            "{:?}: closed after {after:?}",
            String::from_utf8_lossy(sent)
        );
        if sent.starts_with(b"GET") {
            assert!(
                got.starts_with(b"HTTP/1.1 200"),
                "answered, then closed when idle"
            );
        }
    }
    srv.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_is_refused_while_the_open_ones_are_served() {
    let vars = [
        ("IMAS_MAX_CONNECTIONS", "2"),
        ("IMAS_HEADER_TIMEOUT", "30s"),
    ];
    let Some(srv) = TestServer::start(Backend::Sqlite, &vars).await else {
        return;
    };
    let mut a = TcpStream::connect(srv.addr).await.expect("connect a");
    let mut b = TcpStream::connect(srv.addr).await.expect("connect b");
    // Answered: both hold a connection slot now.
    assert_eq!(get(&mut a, "/healthz").await.expect("a").status, 200);
    assert_eq!(get(&mut b, "/healthz").await.expect("b").status, 200);
    for _ in 0..3 {
        let mut over = TcpStream::connect(srv.addr).await.expect("connect over");
        assert!(
            get(&mut over, "/healthz").await.is_none(),
            "a third connection is closed without an answer"
        );
    }
    // The open connections are still served.
    assert_eq!(get(&mut a, "/healthz").await.expect("a again").status, 200);
    assert_eq!(get(&mut b, "/healthz").await.expect("b again").status, 200);
    // A slot freed is a slot taken again: once the server has seen `a` close,
    // a new connection is served.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut next = TcpStream::connect(srv.addr).await.expect("connect next");
        if let Some(answer) = get(&mut next, "/healthz").await {
            assert_eq!(answer.status, 200);
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        tokio::task::yield_now().await;
    }
    srv.stop().await.expect("graceful stop");
}

/// Starts `POST /auth/login` with a body of `length` bytes and sends only its
/// first byte: the request is in the handler, waiting for its body.
async fn stalled_login(srv: &TestServer, length: usize) -> TcpStream {
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    let head = format!(
        "POST /auth/login HTTP/1.1\r\nhost: imas\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_concurrency_cap_is_answered_503_with_retry_after() {
    let vars = [("IMAS_MAX_CONCURRENT_REQUESTS", "2")];
    let Some(srv) = TestServer::start(Backend::Sqlite, &vars).await else {
        return;
    };
    let rest = br#""username":"nobody","password":"not the password"}"#;
    let length = 1 + rest.len();
    // Two requests held in their handlers, then a probe: once both hold a
    // slot, the probe is shed at once. A held request that raced a probe (and
    // was itself shed, which it may) is replaced.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut probe = TcpStream::connect(srv.addr).await.expect("connect");
    let mut held: Vec<TcpStream> = Vec::new();
    let shed = loop {
        held.retain(|s| {
            let mut byte = [0u8; 1];
            // Anything to read (an answer) or the end: it is not held.
            s.try_read(&mut byte).is_err()
        });
        while held.len() < 2 {
            held.push(stalled_login(&srv, length).await);
        }
        let answer = get(&mut probe, "/healthz").await.expect("an answer");
        if answer.status == 503 {
            break answer;
        }
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(Instant::now() < deadline, "the cap of 2 was never reached");
        tokio::task::yield_now().await;
    };
    let retry: u64 = shed
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry >= 1, "{shed:?}");
    let body: serde_json::Value = serde_json::from_str(&shed.body).expect("JSON error");
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(shed.header("x-content-type-options"), Some("nosniff"));
    // The two in flight finish normally, and their slots are free again.
    for stalled in &mut held {
        stalled.write_all(rest).await.expect("rest of the body");
        let answer = read_answer(stalled).await.expect("answer");
        assert_eq!(answer.status, 401, "{answer:?}");
    }
    assert_eq!(
        get(&mut probe, "/healthz").await.expect("after").status,
        200
    );
    srv.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_stalls_is_answered_408_after_the_request_timeout() {
    let vars = [
        ("IMAS_REQUEST_TIMEOUT", "1s"),
        ("IMAS_HEADER_TIMEOUT", "30s"),
    ];
    let Some(srv) = TestServer::start(Backend::Sqlite, &vars).await else {
        return;
    };
    let started = Instant::now();
    let mut stalled = stalled_login(&srv, 100).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut stalled))
        .await
        .expect("answered in time")
        .expect("an answer");
    assert_eq!(answer.status, 408, "{answer:?}");
    let after = started.elapsed();
    assert!(after >= Duration::from_millis(900), "{after:?}");
    srv.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_says_nosniff_and_api_answers_are_not_cached() {
    let Some(srv) = TestServer::start(Backend::Sqlite, &[]).await else {
        return;
    };
    let token = srv.admin_token().await;
    let http = reqwest::Client::new();
    let answers = [
        (
            "JSON",
            http.get(format!("{}/incidents", srv.base))
                .bearer_auth(&token),
        ),
        ("error", http.get(format!("{}/incidents", srv.base))),
        ("no route", http.get(format!("{}/nowhere", srv.base))),
        (
            "bad input",
            http.get(format!("{}/incidents?startDate=soon", srv.base))
                .bearer_auth(&token),
        ),
        (
            "CSV report",
            http.get(format!("{}/reports/incidents?format=csv", srv.base))
                .bearer_auth(&token),
        ),
        (
            "PDF report",
            http.get(format!("{}/reports/incidents?format=pdf", srv.base))
                .bearer_auth(&token),
        ),
        ("health", http.get(format!("{}/healthz", srv.base))),
    ];
    for (what, req) in answers {
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        match what {
            "error" => assert_eq!(status, 401),
            "no route" => assert_eq!(status, 404),
            "bad input" => assert_eq!(status, 400),
            _ => assert_eq!(status, 200, "{what}"),
        }
        let headers = res.headers().clone();
        res.bytes().await.expect("whole body");
        assert_eq!(
            headers.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{what}: {headers:?}"
        );
        assert_eq!(
            headers.get("cache-control").map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "{what}: {headers:?}"
        );
    }
    srv.stop().await.expect("graceful stop");
}

#[test]
fn bad_limits_are_named_at_start_up() {
    let base = [
        ("JWT_SECRET", common::SECRET),
        ("DATABASE_URL", "sqlite://limits.db"),
    ];
    let config = |extra: (&str, &str)| {
        let vars: Vec<(&str, &str)> = base.iter().copied().chain([extra]).collect();
        ServerConfig::from_vars(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    };
    for (name, value) in [
        ("IMAS_HEADER_TIMEOUT", "soon"),
        ("IMAS_HEADER_TIMEOUT", "0s"),
        ("IMAS_REQUEST_TIMEOUT", "-1"),
        ("IMAS_REQUEST_TIMEOUT", "30"),
        ("IMAS_MAX_CONNECTIONS", "0"),
        ("IMAS_MAX_CONNECTIONS", "many"),
        ("IMAS_MAX_CONCURRENT_REQUESTS", "-3"),
        ("IMAS_MAX_CONCURRENT_REQUESTS", "99999999999"),
    ] {
        let err = config((name, value)).expect_err(value).to_string();
        assert!(err.contains(name), "{name}={value}: {err}");
    }
    let defaults = config(("PORT", "3000")).expect("defaults");
    assert_eq!(defaults.header_timeout, Duration::from_secs(10));
    assert_eq!(defaults.request_timeout, Duration::from_secs(30));
    assert_eq!(defaults.max_connections, 1024);
    assert_eq!(defaults.max_concurrent_requests, 512);
    let set = config(("IMAS_HEADER_TIMEOUT", "2500ms")).expect("set");
    assert_eq!(set.header_timeout, Duration::from_millis(2500));
}
