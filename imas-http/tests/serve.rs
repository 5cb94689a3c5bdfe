//! `imas_http::serve::serve` over a real socket: HTTP/1.1 and HTTP/2 on one
//! port, the client's address in every request (`ConnectInfo<SocketAddr>`), and
//! a graceful shutdown that lets the requests in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use imas_http::serve::{ServeOptions, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot};

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(app: Router) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, ServeOptions::default(), async move {
        let _ = rx.await;
    }));
    Running { addr, stop, task }
}

fn whoami() -> Router {
    Router::new().route(
        "/whoami",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_carries_the_client_address_over_http1_and_http2() {
    let srv = start(whoami()).await;
    // HTTP/1.1 on a raw socket: the address is this socket's own.
    let mut stream = tokio::net::TcpStream::connect(srv.addr)
        .await
        .expect("connect");
    let me = stream.local_addr().expect("local addr");
    stream
        .write_all(b"GET /whoami HTTP/1.1\r\nhost: imas\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(&me.to_string()),
        "{answer} is not from {me}"
    );
    // HTTP/2 (prior knowledge) on the same port.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let res = h2
        .get(format!("http://{}/whoami", srv.addr))
        .send()
        .await
        .expect("h2 request");
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    let peer: SocketAddr = res.text().await.expect("body").parse().expect("address");
    assert_eq!(peer.ip(), me.ip());
    let _ = srv.stop.send(());
    srv.task.await.expect("task").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_finishes_the_requests_in_flight_then_stops_accepting() {
    let (entered_tx, mut entered) = mpsc::channel::<()>(1);
    let release = Arc::new(Notify::new());
    let app = {
        let release = release.clone();
        Router::new().route(
            "/slow",
            get(move || async move {
                let _ = entered_tx.send(()).await;
                release.notified().await;
                "done"
            }),
        )
    };
    let srv = start(app).await;
    let url = format!("http://{}/slow", srv.addr);
    let in_flight = tokio::spawn(async move { reqwest::get(url).await?.text().await });
    entered.recv().await.expect("the request is in its handler");
    let _ = srv.stop.send(());
    // The server is draining: the request in flight still gets its answer.
    release.notify_one();
    let body = in_flight
        .await
        .expect("task")
        .expect("answered while draining");
    assert_eq!(body, "done");
    srv.task.await.expect("task").expect("serve");
    assert!(
        tokio::net::TcpStream::connect(srv.addr).await.is_err(),
        "no longer accepting"
    );
}
