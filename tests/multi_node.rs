//! Several reference servers (real processes of the `imas-server` binary) on one
//! PostgreSQL database (`DATABASE_URL`): every SLA breach and escalation level is
//! recorded and notified exactly once, and when a server is killed with SIGKILL,
//! even while it holds claims, the others finish its work.

#![cfg(all(feature = "http", feature = "postgres", feature = "server-bin"))]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::node::start;
use imas::ports::IncidentStore;
use imas::store_sqlx::PostgresStore;
use reqwest::Client;
use serde_json::{Value, json};

fn env_for(url: &str, schema: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", url.to_string()),
        ("IMAS_DB_SCHEMA", schema.to_string()),
        ("JWT_SECRET", "a multi-node secret of 32+ bytes!!".into()),
        ("IMAS_ADMIN_USERNAME", "admin".into()),
        ("IMAS_ADMIN_PASSWORD", "admin password".into()),
        ("IMAS_SLA_POLICY", "critical=3s".into()),
        ("IMAS_ESCALATION_DELAYS", "0s,3s".into()),
        ("IMAS_CLAIM_LEASE", "2s".into()),
    ]
}

struct Api {
    http: Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let v: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{status}: {v}");
        v
    }

    async fn token(&self, base: &str, user: &str, password: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                format!("{base}/auth/login"),
                None,
                Some(json!({"username": user, "password": password})),
            )
            .await;
        v["token"].as_str().expect("token").to_string()
    }

    /// Every item of a paginated list, following `Link: rel="next"`.
    async fn all(&self, base: &str, path: &str, token: &str) -> Vec<Value> {
        let mut url = format!("{base}{path}");
        let mut out = Vec::new();
        loop {
            let res = self
                .http
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .expect("page");
            assert!(res.status().is_success(), "{url}: {}", res.status());
            let next = res
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .map(|l| {
                    let end = l.find('>').unwrap_or(l.len());
                    format!("{base}{}", &l[1..end])
                });
            let items: Vec<Value> = res.json().await.expect("json");
            out.extend(items);
            match next {
                Some(n) => url = n,
                None => return out,
            }
        }
    }
}

/// Sets up an engineer on `base`; returns (admin token, engineer id, engineer token).
async fn people(api: &Api, base: &str) -> (String, String, String) {
    let admin = api.token(base, "admin", "admin password").await;
    let body = json!({"name": "On call", "username": "oncall", "password": "oncall password", "email": "oncall@example.com"});
    let eng = api
        .call(
            reqwest::Method::POST,
            format!("{base}/auth/register"),
            None,
            Some(body),
        )
        .await;
    let eng_id = eng["id"].as_str().expect("id").to_string();
    api.call(
        reqwest::Method::PATCH,
        format!("{base}/users/{eng_id}/role"),
        Some(&admin),
        Some(json!({"role": "engineer"})),
    )
    .await;
    let eng_token = api.token(base, "oncall", "oncall password").await;
    (admin, eng_id, eng_token)
}

async fn create(
    api: &Api,
    bases: &[&str],
    admin: &str,
    assignee: &str,
    n: usize,
) -> HashSet<String> {
    let mut ids = HashSet::new();
    for k in 0..n {
        let base = bases[k % bases.len()];
        let body = json!({"title": format!("incident {k}"), "priority": "critical", "assignedTo": assignee});
        let v = api
            .call(
                reqwest::Method::POST,
                format!("{base}/incidents"),
                Some(admin),
                Some(body),
            )
            .await;
        ids.insert(v["id"].as_str().expect("id").to_string());
    }
    ids
}

/// Waits until every incident is at escalation level 2, then checks that each
/// breach, each level and each notification happened exactly once.
async fn check_exactly_once(api: &Api, base: &str, admin: &str, eng: &str, ids: &HashSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let incidents = api.all(base, "/incidents?limit=500", admin).await;
        let done = incidents
            .iter()
            .filter(|i| i["escalationLevel"] == 2 && i["slaBreached"] == true)
            .count();
        if done == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {} reached level 2",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Give the notification workers a moment to drain, without assuming a count.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (breach_notes, level2_notes) = loop {
        let eng_notes = api.all(base, "/notifications?limit=500", eng).await;
        let admin_notes = api.all(base, "/notifications?limit=500", admin).await;
        let breach: Vec<&Value> = eng_notes
            .iter()
            .filter(|n| n["type"] == "escalation")
            .collect();
        let level2: Vec<&Value> = admin_notes
            .iter()
            .filter(|n| n["type"] == "escalation")
            .collect();
        if (breach.len() >= ids.len() && level2.len() >= ids.len()) || Instant::now() > deadline {
            break (
                breach
                    .iter()
                    .map(|n| n["incidentId"].as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>(),
                level2
                    .iter()
                    .map(|n| n["incidentId"].as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>(),
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let once = |what: &str, list: &[String]| {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for id in list {
            *counts.entry(id.as_str()).or_default() += 1;
        }
        assert_eq!(counts.len(), ids.len(), "{what}: one per incident");
        assert!(
            counts.values().all(|c| *c == 1),
            "{what}: exactly once each"
        );
        assert!(counts.keys().all(|k| ids.contains(*k)));
    };
    once("breach notifications to the assignee", &breach_notes);
    once("level-2 notifications to the admin", &level2_notes);
    let breaches = api
        .all(base, "/audit?action=SLA_BREACH&limit=500", admin)
        .await;
    let targets: Vec<String> = breaches
        .iter()
        .map(|e| e["target"].as_str().unwrap_or_default().to_string())
        .collect();
    once("SLA_BREACH audit entries", &targets);
    let escalations = api
        .all(base, "/audit?action=ESCALATION&limit=500", admin)
        .await;
    assert_eq!(
        escalations.len(),
        2 * ids.len(),
        "levels 1 and 2, once each"
    );
}

fn database() -> Option<(String, String)> {
    let url = imas_core::testkit::service_url("DATABASE_URL")?;
    Some((url, format!("imas_test_{}", uuid::Uuid::new_v4().simple())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_record_every_step_exactly_once() {
    let Some((url, schema)) = database() else {
        return;
    };
    let env = env_for(&url, &schema);
    let a = start(&env).await;
    let b = start(&env).await;
    let api = Api {
        http: Client::new(),
    };
    let (admin, eng_id, eng) = people(&api, &a.base).await;
    let ids = create(&api, &[&a.base, &b.base], &admin, &eng_id, 1_000).await;
    check_exactly_once(&api, &b.base, &admin, &eng, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_holding_claims_is_taken_over() {
    let Some((url, schema)) = database() else {
        return;
    };
    let env = env_for(&url, &schema);
    let mut a = start(&env).await;
    let b = start(&env).await;
    let api = Api {
        http: Client::new(),
    };
    let (admin, eng_id, eng) = people(&api, &a.base).await;
    let ids = create(&api, &[&a.base, &b.base], &admin, &eng_id, 300).await;
    // A third "node" claims some due incidents and dies without a word: its
    // claims stay in the database until their lease ends.
    let ghost = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("ghost");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut held = 0;
    while held == 0 {
        let now = imas::model::truncate_millis(chrono::Utc::now());
        held = ghost
            .claim_due(now, Duration::from_secs(2), 40)
            .await
            .expect("claim")
            .len();
        assert!(Instant::now() < deadline, "nothing fell due");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(ghost);
    // And server A is killed outright in the middle of the breaches.
    a.child.kill().expect("SIGKILL");
    let _ = a.child.wait();
    check_exactly_once(&api, &b.base, &admin, &eng, &ids).await;
    assert!(held > 0);
}
