//! People on call through the reference server (SPEC §5, issue 18), on every
//! backend: a weekly rotation of two engineers, a schedule over it, a policy
//! (the on-call first, the admins five minutes later), a service using it with
//! an acknowledgement timeout. An Events v2 trigger pages whoever is on call;
//! an override hands the shift to the other engineer and the next trigger
//! pages him; his acknowledgement expires, the incident is open again and he
//! is paged again. This is the README walkthrough, asserted.

#![cfg(feature = "http")]

mod common;

use std::time::Duration;

use chrono::{DurationRound, Utc};
use common::ingest::eventually;
use common::{TestServer, backends};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The notifications of the caller about `incident`.
async fn pages_about(server: &TestServer, token: &str, incident: &str) -> Vec<Value> {
    let (s, v) = server
        .call(Method::GET, "/notifications?limit=500", Some(token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array()
        .expect("a list")
        .iter()
        .filter(|n| n["incidentId"] == json!(incident))
        .cloned()
        .collect()
}

/// Triggers an Events v2 alert with `dedup_key`; the id of its incident.
async fn trigger(server: &TestServer, admin: &str, key: &str, dedup_key: &str) -> String {
    let (s, v) = server
        .call(
            Method::POST,
            "/v2/enqueue",
            None,
            Some(json!({
                "routing_key": key,
                "event_action": "trigger",
                "dedup_key": dedup_key,
                "payload": {"summary": format!("{dedup_key} is down"), "source": "probe-1", "severity": "critical"},
            })),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (s, alerts) = server
        .call(Method::GET, "/alerts?limit=500", Some(admin), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{alerts}");
    alerts
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["dedupKey"] == json!(dedup_key))
        .and_then(|a| a["incidentId"].as_str())
        .expect("the alert's incident")
        .to_string()
}

async fn created(server: &TestServer, token: &str, path: &str, body: Value) -> Value {
    let (s, v) = server
        .call(Method::POST, path, Some(token), Some(body))
        .await;
    assert_eq!(s, StatusCode::CREATED, "POST {path}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_on_call_engineer_is_paged_and_an_override_hands_over() {
    for backend in backends() {
        let Some(server) = TestServer::start(backend, &[]).await else {
            continue;
        };
        let admin = server.admin_token().await;
        let (ada, ada_token) = server.user(&admin, "ada", "engineer").await;
        let (bob, bob_token) = server.user(&admin, "bob", "engineer").await;
        let now = Utc::now();
        let hour_ago = (now - chrono::Duration::hours(1))
            .duration_trunc(chrono::Duration::minutes(1))
            .expect("minute");

        // Ada's week now, then Bob's.
        let rotation = created(
            &server,
            &admin,
            "/rotations",
            json!({"name": "backend", "type": "weekly", "start": hour_ago, "timeZone": "Europe/Berlin", "participants": [ada, bob]}),
        )
        .await;
        assert_eq!(rotation["shiftLength"], json!(1), "{rotation}");
        let schedule = created(
            &server,
            &admin,
            "/schedules",
            json!({"name": "backend on call", "timeZone": "Europe/Berlin", "rules": [
                {"target": {"type": "rotation", "id": rotation["id"]}, "start": "00:00", "end": "00:00"}
            ]}),
        )
        .await;
        let schedule_id = schedule["id"].as_str().expect("id").to_string();
        let policy = created(
            &server,
            &admin,
            "/escalation-policies",
            json!({"name": "backend", "repeat": 0, "steps": [
                {"delayMinutes": 5, "targets": [{"type": "schedule", "id": schedule_id}]},
                {"delayMinutes": 5, "targets": [{"type": "role", "role": "admin"}]},
            ]}),
        )
        .await;
        let service = created(
            &server,
            &admin,
            "/services",
            json!({"name": "payments", "escalationPolicyId": policy["id"], "ackTimeoutSeconds": 2}),
        )
        .await;
        assert_eq!(service["escalationPolicyId"], policy["id"], "{service}");
        let integration = created(
            &server,
            &admin,
            &format!(
                "/services/{}/integrations",
                service["id"].as_str().expect("id")
            ),
            json!({"name": "probes", "kind": "events-v2"}),
        )
        .await;
        let key = integration["key"].as_str().expect("key").to_string();

        let (s, on_call) = server
            .call(
                Method::GET,
                &format!("/schedules/{schedule_id}/on-call"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{on_call}");
        assert_eq!(on_call["users"][0]["id"], json!(ada), "{on_call}");

        // The first trigger pages Ada, not Bob.
        let first = trigger(&server, &admin, &key, "payments/down").await;
        eventually(Duration::from_secs(10), "Ada paged", || async {
            let pages = pages_about(&server, &ada_token, &first).await;
            if pages.len() == 1 {
                Ok(())
            } else {
                Err(format!("{pages:?}"))
            }
        })
        .await;
        assert!(pages_about(&server, &bob_token, &first).await.is_empty());
        let (_, incident) = server
            .call(
                Method::GET,
                &format!("/incidents/{first}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(incident["escalationLevel"], json!(1), "{incident}");
        assert_eq!(incident["escalationPolicyId"], policy["id"], "{incident}");
        assert!(incident["nextEscalationAt"].is_string(), "{incident}");

        // Ada hands over to Bob; Ada may do that herself.
        let start = Utc::now()
            .duration_trunc(chrono::Duration::minutes(1))
            .expect("minute");
        let (s, o) = server
            .call(
                Method::POST,
                &format!("/schedules/{schedule_id}/overrides"),
                Some(&ada_token),
                Some(json!({"start": start, "end": start + chrono::Duration::hours(2), "removeUserId": ada, "addUserId": bob})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        let (_, on_call) = server
            .call(
                Method::GET,
                &format!("/schedules/{schedule_id}/on-call"),
                Some(&admin),
                None,
            )
            .await;
        let users: Vec<&Value> = on_call["users"].as_array().expect("users").iter().collect();
        assert_eq!(users.len(), 1, "{on_call}");
        assert_eq!(users[0]["id"], json!(bob), "{on_call}");

        // The next trigger pages Bob.
        let second = trigger(&server, &admin, &key, "payments/slow").await;
        eventually(Duration::from_secs(10), "Bob paged", || async {
            let pages = pages_about(&server, &bob_token, &second).await;
            if pages.len() == 1 {
                Ok(())
            } else {
                Err(format!("{pages:?}"))
            }
        })
        .await;
        assert!(pages_about(&server, &ada_token, &second).await.is_empty());

        // Bob acknowledges; two seconds later the acknowledgement expires,
        // the incident is open again and Bob is paged again.
        let (s, v) = server
            .call(
                Method::PUT,
                &format!("/incidents/{second}"),
                Some(&bob_token),
                Some(json!({"status": "acknowledged"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(v["ackExpiresAt"].is_string(), "{v}");
        assert!(v["nextEscalationAt"].is_null(), "{v}");
        eventually(
            Duration::from_secs(15),
            "the acknowledgement expired",
            || async {
                let (_, i) = server
                    .call(
                        Method::GET,
                        &format!("/incidents/{second}"),
                        Some(&admin),
                        None,
                    )
                    .await;
                let pages = pages_about(&server, &bob_token, &second).await;
                if i["status"] == json!("open") && pages.len() == 2 {
                    Ok(())
                } else {
                    Err(format!("{i} / {} pages", pages.len()))
                }
            },
        )
        .await;
        let (s, audit) = server
            .call(
                Method::GET,
                &format!("/audit?action=ACK_EXPIRED&target={second}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{audit}");
        assert_eq!(audit.as_array().map(Vec::len), Some(1), "{audit}");
        server.stop().await.expect("stop");
    }
}
