//! The reference server on TLS (SPEC §3: `IMAS_TLS_CERT` and `IMAS_TLS_KEY`):
//! HTTPS only, HTTP/2 or HTTP/1.1 by ALPN, with a certificate the test makes;
//! the connection limits hold under TLS: a handshake that stalls is cut off at
//! the header timeout and holds its connection slot no longer, and shutdown
//! does not wait for it.

#![cfg(all(feature = "http", feature = "sqlite"))]

mod common;

use std::time::{Duration, Instant};

use common::tls::TestCa;
use common::{Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server on SQLite over TLS with `vars` on top of the certificate's.
async fn tls_server(ca: &TestCa, vars: &[(&str, &str)]) -> TestServer {
    let tls = ca.vars();
    let mut all: Vec<(&str, &str)> = tls.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(vars);
    TestServer::start(Backend::Sqlite, &all)
        .await
        .expect("SQLite is always there")
        .with_client(ca.client())
}

/// Reads until the server closes the connection (end of file or reset);
/// how long that took. Fails after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            // A TLS alert, say; the close follows.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_only_with_alpn() {
    let ca = TestCa::new();
    let server = tls_server(&ca, &[]).await;
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );

    let h2 = server
        .http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("HTTPS request");
    assert!(h2.status().is_success(), "{}", h2.status());
    assert_eq!(h2.version(), reqwest::Version::HTTP_2, "ALPN offers h2");

    let h1 = ca.client_builder().http1_only().build().expect("client");
    let res = h1
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("HTTPS/1.1 request");
    assert!(res.status().is_success());
    assert_eq!(res.version(), reqwest::Version::HTTP_11);

    // The API itself, with a token, over TLS.
    let token = server.token("admin", common::ADMIN_PASSWORD).await;
    let (status, list) = server
        .call(reqwest::Method::GET, "/incidents", Some(&token), None)
        .await;
    assert!(status.is_success(), "{status}: {list}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    // A client that does not trust the test CA refuses the server.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .expect("client");
    let refused = untrusting
        .get(format!("{}/healthz", server.base))
        .send()
        .await;
    assert!(refused.is_err(), "an unknown CA was accepted");

    server.stop().await.expect("clean stop");
}

/// With one connection slot, a client that opens a connection and never
/// finishes its handshake holds the slot until the header timeout, no longer:
/// meanwhile another connection is refused at once, afterwards HTTPS works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_gives_its_slot_back_at_the_header_timeout() {
    let ca = TestCa::new();
    let server = tls_server(
        &ca,
        &[("IMAS_HEADER_TIMEOUT", "2s"), ("IMAS_MAX_CONNECTIONS", "1")],
    )
    .await;

    // Nothing sent at all.
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut refused = TcpStream::connect(server.addr).await.expect("connect");
    let refused_in = closed_within(&mut refused, Duration::from_secs(10)).await;
    let silent_in = closed_within(&mut silent, Duration::from_secs(20)).await;
    assert!(
        refused_in < Duration::from_millis(1500),
        "the second connection should be refused at once (the slot is held), took {refused_in:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "the stalled handshake was cut off before the header timeout ({silent_in:?})"
    );

    // A handshake begun and left half way: a TLS record header that promises
    // a ClientHello that never comes.
    let mut half = TcpStream::connect(server.addr).await.expect("connect");
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");
    let half_in = closed_within(&mut half, Duration::from_secs(20)).await;
    assert!(
        half_in >= Duration::from_millis(1500),
        "cut off too early: {half_in:?}"
    );

    // The slot is free again.
    let res = server
        .http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("HTTPS after the stalled handshakes");
    assert!(res.status().is_success());
    server.stop().await.expect("clean stop");
}

/// Shutting down does not wait for a handshake in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_stalled_handshake() {
    let ca = TestCa::new();
    let server = tls_server(&ca, &[("IMAS_HEADER_TIMEOUT", "60s")]).await;
    // A real request first, so the accept loop has surely taken the stalled
    // connection once it is the next one.
    let res = server
        .http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("HTTPS");
    assert!(res.status().is_success());
    let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
    stalled.write_all(&[0x16, 0x03, 0x01]).await.expect("write");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("shutdown waited for the stalled handshake")
        .expect("clean stop");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    closed_within(&mut stalled, Duration::from_secs(5)).await;
}
