//! Report downloads as every client asks for them: with `Accept-Encoding: gzip`,
//! `br`, `zstd`, `deflate`, a browser's list, and none, over a real socket
//! against the reference server on SQLite, PostgreSQL and MongoDB. The body is
//! decoded here (the client's own decompression is off) and checked whole: the
//! CSV row by row against the incidents created, the PDF to its `%%EOF` and read
//! back by pdftotext.

#![cfg(all(
    feature = "http",
    feature = "sqlite",
    feature = "postgres",
    feature = "mongo",
    feature = "csv",
    feature = "pdf"
))]

mod common;

use std::collections::BTreeSet;
use std::io::Read;

use common::{Backend, TestServer};
use futures::StreamExt;
use imas::engine::NewIncident;
use reqwest::StatusCode;

/// More than two pages of the report's export batch (500), so the stream goes
/// through several store pages and its end is reached after a short page.
const INCIDENTS: usize = 1001;

/// A client that decodes nothing and asks for no encoding unless told to.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate()
        .build()
        .expect("client")
}

/// Decodes `body` as `encoding` says (the `Content-Encoding` the server chose).
fn decode(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("a complete gzip stream");
        }
        Some("deflate") => {
            flate2::read::ZlibDecoder::new(body)
                .read_to_end(&mut out)
                .expect("a complete deflate (zlib) stream");
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("a complete brotli stream");
        }
        Some("zstd") => out = zstd::stream::decode_all(body).expect("a complete zstd stream"),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

/// Downloads `path` asking for `accept` (None: no `Accept-Encoding` at all);
/// checks the encoding the server chose is one that was offered and returns the
/// decoded body.
async fn download(
    http: &reqwest::Client,
    srv: &TestServer,
    token: &str,
    path: &str,
    accept: Option<&str>,
) -> Vec<u8> {
    let mut req = http.get(format!("{}{path}", srv.base)).bearer_auth(token);
    if let Some(a) = accept {
        req = req.header("accept-encoding", a);
    }
    let res = req.send().await.expect("request");
    assert_eq!(res.status(), StatusCode::OK, "{path} with {accept:?}");
    let encoding = res
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().expect("ascii").to_string());
    match (accept, encoding.as_deref()) {
        (None, got) => assert_eq!(got, None, "{path}: nothing was asked for"),
        (Some(offered), got) => {
            let got = got.unwrap_or_else(|| panic!("{path}: {offered} asked, none given"));
            assert!(
                offered.split(',').any(|o| o.trim() == got),
                "{path}: {got} given, {offered} asked"
            );
        }
    }
    // Read the body chunk by chunk: a stream cut short (a panic in the
    // server's body, a reset) is an error here, not a short body.
    let mut body = Vec::new();
    let mut chunks = res.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.unwrap_or_else(|e| {
            panic!(
                "{path} with {accept:?} broke after {} bytes: {e}",
                body.len()
            )
        });
        body.extend_from_slice(&chunk);
    }
    decode(encoding.as_deref(), &body)
}

/// The ids in a CSV report (first column), checking it parses whole.
fn csv_ids(csv_bytes: &[u8]) -> Vec<String> {
    let mut reader = csv::Reader::from_reader(csv_bytes);
    let headers = reader.headers().expect("header row").clone();
    assert_eq!(&headers[0], "id", "{headers:?}");
    reader
        .records()
        .map(|r| r.expect("a complete CSV record")[0].to_string())
        .collect()
}

async fn downloads_on(backend: Backend) {
    let Some(srv) = TestServer::start(backend, &[]).await else {
        return;
    };
    let admin = srv.admin().await;
    let token = srv.admin_token().await;
    let created: Vec<String> = futures::stream::iter(0..INCIDENTS)
        .map(|n| {
            let engine = srv.engine.clone();
            async move {
                let input = NewIncident {
                    title: format!("download check {n:04}"),
                    description: Some("a body long enough to be worth compressing".into()),
                    kind: None,
                    priority: None,
                    assigned_to: None,
                    service_id: None,
                };
                engine
                    .create_incident(&admin, input)
                    .await
                    .expect("incident")
                    .id
                    .to_string()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let want: BTreeSet<String> = created.into_iter().collect();
    assert_eq!(want.len(), INCIDENTS);

    let http = raw_client();
    let encodings = [
        None,
        Some("gzip"),
        Some("br"),
        Some("zstd"),
        Some("deflate"),
        Some("gzip, deflate, br, zstd"),
    ];
    for accept in encodings {
        let csv = download(&http, &srv, &token, "/reports/incidents?format=csv", accept).await;
        let ids = csv_ids(&csv);
        assert_eq!(ids.len(), INCIDENTS, "{backend:?} CSV rows with {accept:?}");
        let got: BTreeSet<String> = ids.into_iter().collect();
        assert_eq!(got, want, "{backend:?} CSV ids with {accept:?}");

        let pdf = download(&http, &srv, &token, "/reports/incidents?format=pdf", accept).await;
        assert!(pdf.starts_with(b"%PDF-"), "{backend:?} {accept:?}");
        assert!(
            pdf.trim_ascii_end().ends_with(b"%%EOF"),
            "{backend:?} PDF with {accept:?} is cut short: ends {:?}",
            String::from_utf8_lossy(&pdf[pdf.len().saturating_sub(40)..])
        );
        if let Some(pages) = imas_core::testkit::pdf_text(&pdf) {
            let text = pages.join("\n");
            for needle in [
                format!("Incidents: {INCIDENTS}"),
                "download check 0000".to_string(),
                format!("download check {:04}", INCIDENTS - 1),
                format!("page {n} of {n}", n = pages.len()),
            ] {
                assert!(
                    text.contains(&needle),
                    "{backend:?} PDF with {accept:?}: {needle:?} missing"
                );
            }
        }
    }

    // A small report too: its end comes in the first page of the export.
    for accept in [None, Some("gzip"), Some("br")] {
        let csv = download(
            &http,
            &srv,
            &token,
            "/reports/incidents?format=csv&status=closed",
            accept,
        )
        .await;
        assert!(csv_ids(&csv).is_empty(), "{backend:?} {accept:?}");
    }
    srv.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_download_whole_with_every_encoding_on_every_backend() {
    for backend in common::backends() {
        downloads_on(backend).await;
    }
}

/// The suite's HTTP client asks for compression as browsers do, so that every
/// test that talks to the server goes through the compression layer.
#[tokio::test]
async fn the_test_client_asks_for_compression_like_a_browser() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let client = tokio::spawn(async move { reqwest::Client::new().get(url).send().await });
    let (mut socket, _) = listener.accept().await.expect("accept");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        socket.read_exact(&mut byte).await.expect("request head");
        head.push(byte[0]);
    }
    socket
        .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        .await
        .expect("answer");
    let head = String::from_utf8(head).expect("ascii").to_ascii_lowercase();
    let accept = head
        .lines()
        .find_map(|l| l.strip_prefix("accept-encoding:"))
        .unwrap_or_else(|| panic!("no Accept-Encoding in {head}"));
    for encoding in ["gzip", "br", "zstd", "deflate"] {
        assert!(accept.contains(encoding), "{encoding} not asked: {accept}");
    }
    let _ = client.await;
}
