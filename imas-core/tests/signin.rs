//! SPEC §7 in the engine, on a manual clock: failed sign-ins limited per
//! username and per client address with a retry time, the bounded hashing pool,
//! `LOGIN` audited with the address, the reporting rules, the last admin, email
//! and password validation.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{mins, world, world_with};
use imas_core::engine::{NewIncident, NewUser};
use imas_core::limiter::{HashPoolConfig, RateLimit};
use imas_core::model::{AuditAction, AuditEntry, AuditFilter, PageRequest, Role};
use imas_core::ports::AuditStore;
use imas_core::{EngineConfig, Error};

const PASSWORD: &str = "correct horse battery";

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("ip"))
}

async fn audit(w: &common::World, action: AuditAction) -> Vec<AuditEntry> {
    w.store
        .list_audit(
            &AuditFilter {
                action: Some(action),
                ..Default::default()
            },
            PageRequest::first(500),
        )
        .await
        .expect("audit")
        .items
}

fn is_unauthorized<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::Unauthorized { .. }))
}

fn retry_after<T: std::fmt::Debug>(r: Result<T, Error>) -> Duration {
    match r {
        Err(Error::RateLimited { retry_after, .. }) => retry_after,
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn the_sixth_failed_attempt_is_refused_until_the_window_passes() {
    let w = world();
    w.user("alice", Role::User).await;
    for n in 1..=5 {
        let r = w
            .engine
            .login_from("alice", "wrong guess!", ip("192.0.2.1"))
            .await;
        assert!(is_unauthorized(&r), "attempt {n}: {r:?}");
        w.advance(Duration::from_secs(60));
    }
    // Five failures at 0..4 minutes; the sixth attempt, even with the right
    // password, is refused without being checked.
    let wait = retry_after(
        w.engine
            .login_from("alice", PASSWORD, ip("192.0.2.1"))
            .await,
    );
    assert_eq!(wait, mins(15) - mins(5), "until the first failure leaves");
    assert_eq!(
        audit(&w, AuditAction::LoginFailed).await.len(),
        5,
        "refusals are not audited"
    );
    // From another address too: the limit is the username's.
    retry_after(
        w.engine
            .login_from("alice", PASSWORD, ip("198.51.100.7"))
            .await,
    );
    w.advance(wait - Duration::from_millis(1));
    retry_after(w.engine.login("alice", PASSWORD).await);
    w.advance(Duration::from_millis(1));
    w.engine
        .login_from("alice", PASSWORD, ip("192.0.2.1"))
        .await
        .expect("allowed again once the first failure left the window");
}

#[tokio::test]
async fn a_success_clears_the_usernames_failures_and_does_not_count() {
    let w = world();
    w.user("bob", Role::User).await;
    for _ in 0..4 {
        assert!(is_unauthorized(&w.engine.login("bob", "not the one").await));
    }
    w.engine
        .login("bob", PASSWORD)
        .await
        .expect("fifth attempt succeeds");
    // The four failures are forgotten: five more may fail.
    for n in 0..5 {
        let r = w.engine.login("bob", "not the one").await;
        assert!(is_unauthorized(&r), "failure {n} after the success: {r:?}");
    }
    retry_after(w.engine.login("bob", PASSWORD).await);
    // Successes never count: many in a row are fine.
    let w = world();
    w.user("carol", Role::User).await;
    for _ in 0..30 {
        w.engine
            .login_from("carol", PASSWORD, ip("192.0.2.9"))
            .await
            .expect("success");
    }
}

#[tokio::test]
async fn the_address_limit_holds_across_usernames() {
    let w = world_with(EngineConfig {
        sign_in: imas_core::limiter::SignInLimits {
            per_address: RateLimit::new(5, mins(15)),
            ..Default::default()
        },
        ..EngineConfig::default()
    });
    w.user("dave", Role::User).await;
    // Password spraying: one guess for each of many usernames, from one address.
    for n in 0..5 {
        let r = w
            .engine
            .login_from(&format!("victim{n}"), "Summer2024!", ip("203.0.113.5"))
            .await;
        assert!(is_unauthorized(&r), "{n}: {r:?}");
    }
    let wait = retry_after(
        w.engine
            .login_from("victim99", "Summer2024!", ip("203.0.113.5"))
            .await,
    );
    assert_eq!(wait, mins(15));
    // Even a right password from that address waits...
    retry_after(
        w.engine
            .login_from("dave", PASSWORD, ip("203.0.113.5"))
            .await,
    );
    // ...while other addresses (and the same /64 of IPv6 counts as one) are free.
    w.engine
        .login_from("dave", PASSWORD, ip("203.0.113.6"))
        .await
        .expect("another address");
    for n in 0..5 {
        let addr = format!("2001:db8:0:1::{n:x}");
        let r = w
            .engine
            .login_from(&format!("v6-{n}"), "x-guess-x", ip(&addr))
            .await;
        assert!(is_unauthorized(&r), "{addr}: {r:?}");
    }
    retry_after(
        w.engine
            .login_from("someone-else", "x-guess-x", ip("2001:db8:0:1::ffff"))
            .await,
    );
    w.advance(mins(15));
    assert!(is_unauthorized(
        &w.engine
            .login_from("victim99", "Summer2024!", ip("203.0.113.5"))
            .await
    ));
}

#[tokio::test]
async fn sign_ins_are_audited_with_the_client_address() {
    let w = world();
    let erin = w.user("erin", Role::User).await;
    w.engine
        .login_from("erin", PASSWORD, ip("192.0.2.44"))
        .await
        .expect("login");
    let _ = w
        .engine
        .login_from("erin", "bad password!", ip("2001:db8::77"))
        .await;
    let _ = w.engine.login_from("nobody", "bad password!", None).await;
    let logins = audit(&w, AuditAction::Login).await;
    assert_eq!(logins.len(), 1, "{logins:?}");
    let login = &logins[0];
    assert_eq!(login.actor, imas_core::model::Actor::User(erin.id));
    assert_eq!(login.target.as_deref(), Some(erin.id.to_string().as_str()));
    assert!(
        login.description.contains("192.0.2.44"),
        "{}",
        login.description
    );
    assert_eq!(
        serde_json::to_value(login).expect("json")["action"],
        "LOGIN",
        "the audit JSON names the action LOGIN"
    );
    let failed = audit(&w, AuditAction::LoginFailed).await;
    assert_eq!(failed.len(), 2);
    let by_target = |t: &str| {
        failed
            .iter()
            .find(|e| e.target.as_deref() == Some(t))
            .map(|e| e.description.clone())
            .expect("entry")
    };
    assert!(
        by_target("erin").contains("2001:db8::77"),
        "{}",
        by_target("erin")
    );
    assert!(by_target("nobody").contains("unknown address"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_pool_refuses_at_once() {
    let w = world_with(EngineConfig {
        hash_pool: HashPoolConfig {
            workers: 1,
            queue: 2,
            retry_after: Duration::from_secs(3),
        },
        ..EngineConfig::default()
    });
    w.user("frank", Role::User).await;
    // 40 attempts at once from 40 addresses for 40 usernames: no limit applies,
    // only the pool's three places.
    let attempts = (0..40).map(|n| {
        let engine = w.engine.clone();
        async move {
            engine
                .login_from(
                    &format!("user{n}"),
                    "wrong password",
                    ip(&format!("10.0.0.{n}")),
                )
                .await
        }
    });
    // Each is polled once, in one pass, before any is awaited: all 40 reach
    // the pool at once (join_all's FuturesUnordered yields after 32 polls,
    // which let the last ones in after the first hashes had finished).
    let mut results = Vec::new();
    let mut in_pool = Vec::new();
    for attempt in attempts {
        let mut attempt = Box::pin(attempt);
        match futures::poll!(&mut attempt) {
            std::task::Poll::Ready(r) => results.push(r),
            std::task::Poll::Pending => in_pool.push(attempt),
        }
    }
    for attempt in in_pool {
        results.push(attempt.await);
    }
    let mut unauthorized = 0;
    let mut unavailable = 0;
    for r in results {
        match r {
            Err(Error::Unauthorized { .. }) => unauthorized += 1,
            Err(Error::Unavailable { retry_after, .. }) => {
                assert_eq!(retry_after, Duration::from_secs(3));
                unavailable += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(unauthorized >= 3, "the pool works: {unauthorized}");
    assert!(unavailable >= 30, "the rest is refused: {unavailable}");
    // A refusal counted nothing: the pool is free again and the users may try.
    assert!(is_unauthorized(
        &w.engine
            .login_from("user39", "wrong password", ip("10.0.0.39"))
            .await
    ));
    w.engine
        .login("frank", PASSWORD)
        .await
        .expect("the pool is free again");
}

#[tokio::test]
async fn concurrent_attempts_cannot_pass_the_limit_together() {
    let w = world();
    w.user("gina", Role::User).await;
    let attempts = (0..20).map(|_| {
        let engine = w.engine.clone();
        async move { engine.login("gina", "wrong password").await }
    });
    let results = futures::future::join_all(attempts).await;
    let checked = results.iter().filter(|r| is_unauthorized(r)).count();
    let limited = results
        .iter()
        .filter(|r| matches!(r, Err(Error::RateLimited { .. })))
        .count();
    assert_eq!((checked, limited), (5, 15));
}

#[tokio::test]
async fn a_user_cannot_assign_when_reporting() {
    let w = world();
    let user = w.user("reporter", Role::User).await;
    let eng = w.user("eng", Role::Engineer).await;
    let e = w
        .engine
        .create_incident(
            &user,
            NewIncident {
                title: "assign it to eng".into(),
                assigned_to: Some(eng.id),
                ..Default::default()
            },
        )
        .await
        .expect_err("403");
    assert!(matches!(e, Error::Forbidden { .. }), "{e:?}");
    let stored =
        imas_core::ports::IncidentStore::count_incidents(w.store.as_ref(), &Default::default())
            .await
            .expect("count");
    assert_eq!(stored, 0, "nothing was created");
    // Unassigned is fine; an engineer may assign.
    w.engine
        .create_incident(
            &user,
            NewIncident {
                title: "unassigned".into(),
                ..Default::default()
            },
        )
        .await
        .expect("user reports");
    w.engine
        .create_incident(
            &eng,
            NewIncident {
                title: "assigned".into(),
                assigned_to: Some(eng.id),
                ..Default::default()
            },
        )
        .await
        .expect("engineer assigns");
}

#[tokio::test]
async fn reporting_is_limited_per_user() {
    let w = world();
    let user = w.user("prolific", Role::User).await;
    let other = w.user("other", Role::User).await;
    let eng = w.user("eng", Role::Engineer).await;
    let report = |who, n: usize| {
        let engine = w.engine.clone();
        async move {
            engine
                .create_incident(
                    &who,
                    NewIncident {
                        title: format!("report {n}"),
                        ..Default::default()
                    },
                )
                .await
        }
    };
    for n in 0..60 {
        report(user, n).await.expect("within the limit");
        w.advance(Duration::from_secs(30));
    }
    // 60 reports over the last 30 minutes; the first leaves the hour in 30.
    let e = report(user, 60).await.expect_err("61st");
    match e {
        Error::RateLimited { retry_after, .. } => assert_eq!(retry_after, mins(30)),
        e => panic!("expected RateLimited, got {e:?}"),
    }
    // Others are not affected, and engineers are not limited.
    report(other, 0).await.expect("another user");
    for n in 0..70 {
        report(eng, n).await.expect("engineer");
    }
    w.advance(mins(30));
    report(user, 61).await.expect("the oldest left the window");
    assert!(matches!(
        report(user, 62).await,
        Err(Error::RateLimited { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_sent_at_once_cannot_pass_the_limit_together() {
    let w = world();
    let user = w.user("burst", Role::User).await;
    let tasks: Vec<_> = (0..90)
        .map(|n| {
            let engine = w.engine.clone();
            tokio::spawn(async move {
                engine
                    .create_incident(
                        &user,
                        NewIncident {
                            title: format!("burst {n}"),
                            ..Default::default()
                        },
                    )
                    .await
            })
        })
        .collect();
    let (mut made, mut limited) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => made += 1,
            Err(Error::RateLimited { .. }) => limited += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((made, limited), (60, 30));
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted() {
    let w = world();
    let root = w.root().await;
    let e = w
        .engine
        .change_role(&root, root.id, Role::Engineer)
        .await
        .expect_err("409");
    assert!(matches!(e, Error::Conflict { .. }), "{e:?}");
    let second = w.user("second", Role::Admin).await;
    let eng = w.user("eng", Role::Engineer).await;
    // With two admins, one may go; then the other is the last.
    let demoted = w
        .engine
        .change_role(&second, root.id, Role::User)
        .await
        .expect("one of two");
    assert_eq!(demoted.role, Role::User);
    let e = w
        .engine
        .change_role(&second, second.id, Role::Engineer)
        .await
        .expect_err("now the last");
    assert!(matches!(e, Error::Conflict { .. }), "{e:?}");
    // Promoting is always possible.
    w.engine
        .change_role(&second, eng.id, Role::Admin)
        .await
        .expect("promote");
}

#[tokio::test]
async fn addresses_and_passwords_are_validated_on_registration() {
    let w = world();
    let user = |username: &str, email: &str, password: &str| NewUser {
        name: "N".into(),
        username: username.into(),
        email: email.into(),
        password: password.into(),
    };
    for email in [
        "a,b@example.com",
        "a@example.com, b@example.com",
        "Ada <ada@example.com>",
        "ada@@example.com",
        "ada@example..com",
        "ada example@example.com",
        "ada@",
        "@example.com",
        "ada@localhost",
    ] {
        let e = w
            .engine
            .register(user("okname", email, "tulip kettle 42"))
            .await
            .expect_err(email);
        assert!(
            matches!(&e, Error::Validation { field, .. } if field == "email"),
            "{email}: {e:?}"
        );
    }
    for password in [
        "password123",
        "iloveyou",
        "Password1",
        "qwertyuiop",
        "12345678",
    ] {
        let e = w
            .engine
            .register(user("okname", "ok@example.com", password))
            .await
            .expect_err(password);
        assert!(
            matches!(&e, Error::Validation { field, .. } if field == "password"),
            "{password}: {e:?}"
        );
    }
    // The bootstrap admin too.
    let e = w
        .engine
        .ensure_admin("boss", "password123", "boss@example.com")
        .await
        .expect_err("common");
    assert!(matches!(&e, Error::Validation { field, .. } if field == "password"));
    let (u, _) = w
        .engine
        .register(user(
            "okname",
            "O'Brien+tag@Mail.Example.org",
            "tulip kettle 42",
        ))
        .await
        .expect("a valid address and an uncommon password");
    assert_eq!(u.email, "o'brien+tag@mail.example.org");
}

#[tokio::test]
async fn many_distinct_usernames_and_addresses_keep_memory_bounded() {
    let w = world_with(EngineConfig {
        sign_in: imas_core::limiter::SignInLimits {
            max_tracked: 100,
            ..Default::default()
        },
        ..EngineConfig::default()
    });
    // Refusals are cheap and never hashed; attempts that pass are. Cycle 300
    // names over 300 addresses: every one is checked (none is over its limit),
    // and the table evicts the oldest.
    for n in 0..300 {
        let r = w
            .engine
            .login_from(
                &format!("u{n}"),
                "nope nope",
                ip(&format!("10.1.{}.{}", n / 256, n % 256)),
            )
            .await;
        assert!(is_unauthorized(&r), "{n}: {r:?}");
    }
    // The newest are still tracked: four more failures for the last name lock it.
    for _ in 0..4 {
        let _ = w.engine.login("u299", "nope nope").await;
    }
    retry_after(w.engine.login("u299", "nope nope").await);
}
