//! The email channel against a real SMTP server the test starts (Python's
//! aiosmtpd, storing mail in a maildir): the recipient gets one mail per
//! notification, with the idempotency key as Message-ID, and a redelivery sends
//! nothing more. Needs `python3 -m aiosmtpd` (`pip install aiosmtpd`, which
//! `.ci/run` does); without it the test skips, and under CI=true it fails.

#![cfg(feature = "email")]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imas::channels::EmailChannel;
use imas::memory::{MemoryQueue, MemoryStore};
use imas::model::{NotificationIntent, NotificationType, Role};
use imas::ports::{Change, ChangeStore, NewJob, Queue, RetryPolicy, SystemClock, UserWrite};
use imas::{Engine, EngineConfig};

struct Smtp {
    child: Child,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtp(port: u16, maildir: &std::path::Path) -> Option<Smtp> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let available = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            !ci,
            "python3 -m aiosmtpd is needed under CI=true (pip install aiosmtpd)"
        );
        eprintln!("skipping: python3 -m aiosmtpd is not installed");
        return None;
    }
    let child = Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn aiosmtpd");
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Smtp { child })
}

fn mails(maildir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(maildir.join("new"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_notification_is_mailed_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let maildir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("maildir-{}", uuid::Uuid::new_v4()));
    let Some(_smtp) = start_smtp(port, &maildir) else {
        return;
    };

    let store = Arc::new(MemoryStore::new());
    let grace = imas_core::testkit::store::user("grace", Role::Engineer);
    store
        .commit(Change {
            user: Some(UserWrite::Insert(grace.clone())),
            ..Change::default()
        })
        .await
        .expect("user");
    let email = EmailChannel::new(
        &format!("smtp://127.0.0.1:{port}"),
        "IMAS <imas@example.com>",
    )
    .expect("channel");
    let queue = Arc::new(MemoryQueue::new(
        Arc::new(SystemClock),
        RetryPolicy::default(),
    ));
    let engine = Engine::builder(store.clone())
        .queue(queue.clone())
        .channel(Arc::new(email))
        .config(EngineConfig::default())
        .build()
        .expect("engine");
    let intent = NotificationIntent {
        key: "inc-1:breach:grace".into(),
        user: grace.id,
        message: "SLA violated for \"Checkout returns 502\"".into(),
        kind: NotificationType::Escalation,
        incident_id: None,
        created_at: imas::model::truncate_millis(chrono::Utc::now()),
    };
    store
        .commit(Change {
            outbox: vec![intent.clone()],
            ..Change::default()
        })
        .await
        .expect("commit");
    engine.flush_notifications().await.expect("flush");
    // The same intent again, as a redelivered job would bring it.
    queue
        .enqueue(vec![NewJob::new(
            intent.key.clone(),
            serde_json::to_value(&intent).expect("json"),
        )])
        .await
        .expect("enqueue");
    engine.flush_notifications().await.expect("flush");

    let deadline = Instant::now() + Duration::from_secs(10);
    while mails(&maildir).is_empty() {
        assert!(Instant::now() < deadline, "no mail arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = mails(&maildir);
    assert_eq!(got.len(), 1, "one mail, not two: {got:?}");
    let mail = &got[0];
    assert!(mail.contains("grace@example.com"), "{mail}");
    assert!(mail.contains("Checkout returns 502"), "{mail}");
    assert!(
        mail.contains("Message-ID: <inc-1.breach.grace@imas>"),
        "{mail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_address_is_dead_lettered_at_once_without_a_call() {
    // A server that would see any attempt (none must come).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let store = Arc::new(MemoryStore::new());
    let mut bad = imas_core::testkit::store::user("commas", Role::Engineer);
    // Accepted before addresses were validated on registration.
    bad.email = "a,b@example.com".into();
    store
        .commit(Change {
            user: Some(UserWrite::Insert(bad.clone())),
            ..Change::default()
        })
        .await
        .expect("user");
    let email = EmailChannel::new(
        &format!("smtp://127.0.0.1:{port}"),
        "IMAS <imas@example.com>",
    )
    .expect("channel");
    let engine = Engine::builder(store.clone())
        .channel(Arc::new(email))
        .build()
        .expect("engine");
    store
        .commit(Change {
            outbox: vec![NotificationIntent {
                key: "inc-2:breach:commas".into(),
                user: bad.id,
                message: "SLA violated".into(),
                kind: NotificationType::Escalation,
                incident_id: None,
                created_at: imas::model::truncate_millis(chrono::Utc::now()),
            }],
            ..Change::default()
        })
        .await
        .expect("commit");
    let r = engine.flush_notifications().await.expect("flush");
    assert_eq!((r.failed, r.dead_lettered), (1, 1), "{r:?}");
    let dead = engine.queue().dead_letters(10).await.expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].key.as_str(), dead[0].attempts),
        ("inc-2:breach:commas", 1)
    );
    assert!(
        dead[0].error.contains("recipient address"),
        "{}",
        dead[0].error
    );
    assert_eq!(
        imas::ports::OutboxStore::pending_outbox(store.as_ref())
            .await
            .expect("pending"),
        0,
        "not republished"
    );
    assert!(
        listener.accept().is_err(),
        "no SMTP connection was attempted"
    );
}
