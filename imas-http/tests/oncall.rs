//! The on-call routes of SPEC §5 over a real socket (`imas_http::serve::serve`)
//! with a real client (reqwest), on a memory store and a manual clock:
//! rotations, schedules and their overrides, the on-call answers, escalation
//! policies and the services that use them, `GET /users` and the caller's own
//! account. Every route's happy path; the 400s name the field at fault; 401,
//! 403 by role, 404 and 409.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use imas_core::Engine;
use imas_core::auth::JwtKeys;
use imas_core::memory::MemoryStore;
use imas_core::model::Role;
use imas_core::ports::ManualClock;
use imas_http::serve::{ServeOptions, serve};
use reqwest::header::{HeaderMap, LINK};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const PASSWORD: &str = "a long and unusual passphrase";

/// The engine's "now": Monday 2 March 2026, 10:00 UTC.
const NOW: &str = "2026-03-02T10:00:00Z";

/// The weekly rotation's first handoff: Monday 2 March 2026, 09:00 UTC.
const ROTATION_START: &str = "2026-03-02T09:00:00Z";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("instant")
        .with_timezone(&Utc)
}

/// The API served on a free port, with the tokens and ids of an admin, two
/// engineers (Enzo, Emma) and a plain user (Uma).
struct Srv {
    base: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    admin: String,
    enzo: String,
    emma: String,
    uma: String,
    admin_id: String,
    enzo_id: String,
    emma_id: String,
}

/// An answer: status, headers, body as JSON (`Null` when empty).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    /// Asserts the status; returns the body.
    fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.body
    }

    /// Asserts a 400 whose `field` is `field`; returns the body.
    fn invalid(self, field: &str) -> Value {
        let body = self.expect(StatusCode::BAD_REQUEST);
        assert_eq!(body["field"], field, "{body}");
        assert!(body["error"].is_string(), "{body}");
        body
    }

    /// Asserts an error with this status (a JSON body with `error`).
    fn error(self, status: StatusCode) -> Value {
        let body = self.expect(status);
        assert!(body["error"].is_string(), "{body}");
        body
    }

    fn next_link(&self) -> Option<String> {
        let link = self.headers.get(LINK)?.to_str().ok()?;
        let start = link.find('<')? + 1;
        let end = link.find('>')?;
        Some(link[start..end].to_owned())
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn register(engine: &Engine, name: &str, username: &str) -> (String, String) {
    let (user, _) = engine
        .register(imas_core::engine::NewUser {
            name: name.into(),
            username: username.into(),
            email: format!("{username}@example.com"),
            password: PASSWORD.into(),
        })
        .await
        .expect("register");
    let token = engine.login(username, PASSWORD).await.expect("login");
    (user.id.to_string(), token)
}

async fn start() -> Srv {
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .jwt_keys(JwtKeys::new(&[5; 32], Duration::from_secs(3600)).expect("keys"))
        .clock(Arc::new(ManualClock::new(t(NOW))))
        .build()
        .expect("engine");
    engine
        .ensure_admin("admin", PASSWORD, "admin@example.com")
        .await
        .expect("admin");
    let admin = engine.login("admin", PASSWORD).await.expect("admin login");
    let by = engine.authenticate(&admin).await.expect("admin principal");
    let admin_id = by.id.to_string();
    let (uma_id, uma) = register(&engine, "Uma User", "uma").await;
    let _ = uma_id;
    let (enzo_id, _) = register(&engine, "Enzo Engineer", "enzo").await;
    let (emma_id, _) = register(&engine, "Emma Engineer", "emma").await;
    for id in [&enzo_id, &emma_id] {
        engine
            .change_role(&by, id.parse().expect("id"), Role::Engineer)
            .await
            .expect("role");
    }
    let enzo = engine.login("enzo", PASSWORD).await.expect("login");
    let emma = engine.login("emma", PASSWORD).await.expect("login");
    let app = imas_http::router(engine);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, ServeOptions::default(), async move {
        let _ = rx.await;
    }));
    Srv {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        stop: Some(stop),
        task: Some(task),
        admin,
        enzo,
        emma,
        uma,
        admin_id,
        enzo_id,
        emma_id,
    }
}

impl Srv {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes)))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    async fn delete(&self, path: &str, token: &str) -> Answer {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// The weekly rotation Enzo, Emma from [`ROTATION_START`], in UTC.
    async fn rotation(&self) -> Value {
        self.post(
            "/rotations",
            &self.admin,
            json!({
                "name": "primary",
                "type": "weekly",
                "start": ROTATION_START,
                "participants": [self.enzo_id, self.emma_id],
            }),
        )
        .await
        .expect(StatusCode::CREATED)
    }

    /// A schedule in UTC: the rotation all day every day, and the admin on
    /// weekend nights (22:00 to 06:00, Saturday and Sunday nights).
    async fn schedule(&self, rotation: &Value) -> Value {
        self.post(
            "/schedules",
            &self.admin,
            json!({
                "name": "payments on call",
                "timeZone": "UTC",
                "rules": [
                    { "target": { "type": "rotation", "id": rotation["id"] }, "start": "00:00", "end": "00:00" },
                    { "target": { "type": "user", "id": self.admin_id }, "start": "22:00", "end": "06:00", "weekdays": ["sat", "sun"] },
                ],
            }),
        )
        .await
        .expect(StatusCode::CREATED)
    }

    /// The usernames on call in `schedule` at `at`.
    async fn on_call(&self, schedule: &Value, at: &str) -> Vec<String> {
        let id = schedule["id"].as_str().expect("id");
        let body = self
            .get(
                &format!("/schedules/{id}/on-call?at={}", enc(at)),
                &self.enzo,
            )
            .await
            .expect(StatusCode::OK);
        assert_eq!(t(body["at"].as_str().expect("at")), t(at), "{body}");
        usernames(&body["users"])
    }
}

fn enc(s: &str) -> String {
    s.replace('+', "%2B")
}

fn usernames(users: &Value) -> Vec<String> {
    users
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["username"].as_str().expect("username").to_owned())
        .collect()
}

fn id(v: &Value) -> &str {
    v["id"].as_str().expect("id")
}

// ----- rotations ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_are_created_listed_read_changed_and_deleted() {
    let srv = start().await;
    let rotation = srv.rotation().await;
    assert_eq!(rotation["name"], "primary");
    assert_eq!(rotation["type"], "weekly");
    assert_eq!(rotation["shiftLength"], 1, "default shift length");
    assert_eq!(rotation["timeZone"], "UTC", "default time zone");
    assert_eq!(
        t(rotation["start"].as_str().expect("start")),
        t(ROTATION_START)
    );
    assert_eq!(rotation["participants"], json!([srv.enzo_id, srv.emma_id]));
    let path = format!("/rotations/{}", id(&rotation));
    // Engineers read.
    let read = srv.get(&path, &srv.enzo).await.expect(StatusCode::OK);
    assert_eq!(read, rotation);
    // Listed like every list: an array, newest first, `Link: rel="next"`.
    for name in ["secondary", "tertiary"] {
        srv.post(
            "/rotations",
            &srv.admin,
            json!({ "name": name, "type": "daily", "start": ROTATION_START, "timeZone": "Europe/Berlin" }),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let first = srv.get("/rotations?limit=2", &srv.emma).await;
    let next = first.next_link().expect("a next page");
    let names: Vec<_> = first
        .expect(StatusCode::OK)
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, [json!("tertiary"), json!("secondary")]);
    let second = srv.get(&next, &srv.emma).await;
    assert!(second.next_link().is_none());
    assert_eq!(second.expect(StatusCode::OK), json!([rotation]));
    srv.get("/rotations?limit=0", &srv.admin)
        .await
        .invalid("limit");
    // Changed by an admin.
    let changed = srv
        .patch(&path, &srv.admin, json!({ "name": "primary (EU)", "timeZone": "Europe/Berlin", "participants": [srv.emma_id] }))
        .await
        .expect(StatusCode::OK);
    assert_eq!(changed["name"], "primary (EU)");
    assert_eq!(changed["timeZone"], "Europe/Berlin");
    assert_eq!(changed["participants"], json!([srv.emma_id]));
    assert_eq!(changed["type"], "weekly", "unchanged");
    // Deleted: 204, then 404.
    srv.delete(&path, &srv.admin)
        .await
        .expect(StatusCode::NO_CONTENT);
    srv.get(&path, &srv.admin)
        .await
        .error(StatusCode::NOT_FOUND);
    srv.delete(&path, &srv.admin)
        .await
        .error(StatusCode::NOT_FOUND);
    srv.patch(&path, &srv.admin, json!({ "name": "x" }))
        .await
        .error(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotations_shifts_alternate_week_by_week() {
    let srv = start().await;
    let rotation = srv.rotation().await;
    let path = format!(
        "/rotations/{}/shifts?start=2026-03-02T00:00:00Z&end=2026-03-16T00:00:00Z",
        id(&rotation)
    );
    let shifts = srv.get(&path, &srv.enzo).await.expect(StatusCode::OK);
    let shifts = shifts.as_array().expect("array");
    assert_eq!(shifts.len(), 3, "{shifts:?}");
    // Emma's shift of the week before goes on into the range.
    assert_eq!(shifts[0]["userId"], srv.emma_id.as_str());
    assert_eq!(shifts[0]["truncated"], true);
    assert_eq!(
        t(shifts[0]["end"].as_str().expect("end")),
        t("2026-03-02T09:00:00Z")
    );
    assert_eq!(shifts[1]["userId"], srv.enzo_id.as_str());
    assert_eq!(shifts[1]["truncated"], false);
    assert_eq!(
        t(shifts[1]["start"].as_str().expect("start")),
        t("2026-03-02T09:00:00Z")
    );
    assert_eq!(
        t(shifts[1]["end"].as_str().expect("end")),
        t("2026-03-09T09:00:00Z")
    );
    assert_eq!(shifts[2]["userId"], srv.emma_id.as_str());
    assert_eq!(shifts[2]["truncated"], true);
    assert_eq!(
        t(shifts[2]["start"].as_str().expect("start")),
        t("2026-03-09T09:00:00Z")
    );
    // An offset other than Z is the same instant.
    let berlin = format!(
        "/rotations/{}/shifts?start=2026-03-02T10:00:00%2B01:00&end=2026-03-09T10:00:00%2B01:00",
        id(&rotation)
    );
    let shifts = srv.get(&berlin, &srv.enzo).await.expect(StatusCode::OK);
    assert_eq!(shifts[0]["userId"], srv.enzo_id.as_str(), "{shifts}");
}

// ----- schedules, overrides, on call ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_created_listed_read_changed_and_deleted() {
    let srv = start().await;
    let rotation = srv.rotation().await;
    let schedule = srv.schedule(&rotation).await;
    assert_eq!(schedule["timeZone"], "UTC");
    assert_eq!(schedule["overrides"], json!([]));
    let rules = schedule["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[0]["weekdays"],
        json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
        "default: every day"
    );
    assert_eq!(rules[1]["weekdays"], json!(["sat", "sun"]));
    assert_eq!(rules[1]["start"], "22:00");
    assert_eq!(
        rules[1]["target"],
        json!({ "type": "user", "id": srv.admin_id })
    );
    let path = format!("/schedules/{}", id(&schedule));
    assert_eq!(
        srv.get(&path, &srv.emma).await.expect(StatusCode::OK),
        schedule
    );
    let second = srv
        .post(
            "/schedules",
            &srv.admin,
            json!({ "name": "database on call", "timeZone": "America/New_York" }),
        )
        .await
        .expect(StatusCode::CREATED);
    let page = srv.get("/schedules?limit=1", &srv.enzo).await;
    let next = page.next_link().expect("a next page");
    assert_eq!(page.expect(StatusCode::OK), json!([second]));
    assert_eq!(
        srv.get(&next, &srv.enzo).await.expect(StatusCode::OK),
        json!([schedule])
    );
    let changed = srv
        .patch(
            &path,
            &srv.admin,
            json!({ "timeZone": "Europe/Berlin", "rules": [] }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(changed["timeZone"], "Europe/Berlin");
    assert_eq!(changed["rules"], json!([]));
    assert_eq!(changed["name"], "payments on call");
    srv.delete(&path, &srv.admin)
        .await
        .expect(StatusCode::NO_CONTENT);
    srv.get(&path, &srv.admin)
        .await
        .error(StatusCode::NOT_FOUND);
    srv.get(&format!("{path}/on-call"), &srv.admin)
        .await
        .error(StatusCode::NOT_FOUND);
    srv.get(
        &format!("{path}/shifts?start=2026-03-02T00:00:00Z&end=2026-03-03T00:00:00Z"),
        &srv.admin,
    )
    .await
    .error(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_call_follows_the_rules_overnight_and_the_rotation() {
    let srv = start().await;
    let rotation = srv.rotation().await;
    let schedule = srv.schedule(&rotation).await;
    for (at, who) in [
        ("2026-03-02T10:00:00Z", &["enzo"][..]),
        // The week before the rotation's start belongs to Emma.
        ("2026-03-02T08:59:00Z", &["emma"][..]),
        // Sunday night: the admin joins at 22:00 ...
        ("2026-03-08T23:00:00Z", &["enzo", "admin"][..]),
        ("2026-03-08T21:59:00Z", &["enzo"][..]),
        // ... until 06:00 on Monday (Sunday is a day of the rule).
        ("2026-03-09T05:59:00Z", &["enzo", "admin"][..]),
        ("2026-03-09T06:00:00Z", &["enzo"][..]),
        ("2026-03-09T09:00:00Z", &["emma"][..]),
        // Monday night is not a night of the rule.
        ("2026-03-10T05:00:00Z", &["emma"][..]),
        // Another offset, the same instant.
        ("2026-03-09T00:30:00+01:00", &["enzo", "admin"][..]),
    ] {
        assert_eq!(srv.on_call(&schedule, at).await, who, "at {at}");
    }
    // Without `at`: now (the engine's clock, Monday 10:00).
    let now = srv
        .get(&format!("/schedules/{}/on-call", id(&schedule)), &srv.enzo)
        .await
        .expect(StatusCode::OK);
    assert_eq!(t(now["at"].as_str().expect("at")), t(NOW));
    assert_eq!(usernames(&now["users"]), ["enzo"]);
    let user = &now["users"][0];
    assert_eq!(user["id"], srv.enzo_id.as_str());
    assert_eq!(user["name"], "Enzo Engineer");
    assert_eq!(user["role"], "engineer");
    assert_eq!(user["timeZone"], "UTC");
    // The shifts of the weekend night, merged per user.
    let shifts = srv
        .get(
            &format!(
                "/schedules/{}/shifts?start=2026-03-08T20:00:00Z&end=2026-03-09T08:00:00Z",
                id(&schedule)
            ),
            &srv.enzo,
        )
        .await
        .expect(StatusCode::OK);
    let mut got: Vec<(String, DateTime<Utc>, DateTime<Utc>, bool)> = shifts
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            (
                s["userId"].as_str().expect("userId").to_owned(),
                t(s["start"].as_str().expect("start")),
                t(s["end"].as_str().expect("end")),
                s["truncated"].as_bool().expect("truncated"),
            )
        })
        .collect();
    got.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
    let mut want = vec![
        (
            srv.admin_id.clone(),
            t("2026-03-08T22:00:00Z"),
            t("2026-03-09T06:00:00Z"),
            false,
        ),
        (
            srv.enzo_id.clone(),
            t("2026-03-08T20:00:00Z"),
            t("2026-03-09T08:00:00Z"),
            true,
        ),
    ];
    want.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
    assert_eq!(got, want, "{shifts}");
    // Every schedule at once.
    srv.post("/schedules", &srv.admin, json!({ "name": "empty" }))
        .await
        .expect(StatusCode::CREATED);
    let everywhere = srv
        .get("/oncall?at=2026-03-08T23:00:00Z", &srv.emma)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        t(everywhere["at"].as_str().expect("at")),
        t("2026-03-08T23:00:00Z")
    );
    let schedules = everywhere["schedules"].as_array().expect("schedules");
    assert_eq!(schedules.len(), 2, "{everywhere}");
    let payments = schedules
        .iter()
        .find(|s| s["scheduleId"] == schedule["id"])
        .expect("the payments schedule");
    assert_eq!(payments["name"], "payments on call");
    assert_eq!(usernames(&payments["users"]), ["enzo", "admin"]);
    let empty = schedules
        .iter()
        .find(|s| s["name"] == "empty")
        .expect("the empty schedule");
    assert_eq!(empty["users"], json!([]), "nobody on call");
    let now = srv.get("/oncall", &srv.admin).await.expect(StatusCode::OK);
    assert_eq!(t(now["at"].as_str().expect("at")), t(NOW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_add_remove_and_replace_and_engineers_manage_their_own() {
    let srv = start().await;
    let rotation = srv.rotation().await;
    let schedule = srv.schedule(&rotation).await;
    let overrides = format!("/schedules/{}/overrides", id(&schedule));
    // Emma takes Enzo's Tuesday (she is the added user: she may).
    let replace = srv
        .post(
            &overrides,
            &srv.emma,
            json!({ "start": "2026-03-03T00:00:00Z", "end": "2026-03-04T00:00:00Z", "removeUserId": srv.enzo_id, "addUserId": srv.emma_id }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(replace["addUserId"], srv.emma_id.as_str());
    assert_eq!(replace["removeUserId"], srv.enzo_id.as_str());
    assert_eq!(replace["createdBy"], srv.emma_id.as_str());
    assert_eq!(
        srv.on_call(&schedule, "2026-03-03T10:00:00Z").await,
        ["emma"]
    );
    assert_eq!(
        srv.on_call(&schedule, "2026-03-04T00:00:00Z").await,
        ["enzo"],
        "the end is not in it"
    );
    // A remove applies only while the removed user is on call: Emma is not on
    // Saturday night, the admin stays.
    srv.post(
        &overrides,
        &srv.emma,
        json!({ "start": "2026-03-07T00:00:00Z", "end": "2026-03-08T00:00:00Z", "removeUserId": srv.emma_id }),
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(
        srv.on_call(&schedule, "2026-03-07T23:00:00Z").await,
        ["enzo", "admin"]
    );
    // Enzo removes himself on Friday: nobody.
    srv.post(
        &overrides,
        &srv.enzo,
        json!({ "start": "2026-03-06T00:00:00Z", "end": "2026-03-07T00:00:00Z", "removeUserId": srv.enzo_id }),
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(
        srv.on_call(&schedule, "2026-03-06T12:00:00Z").await,
        Vec::<String>::new()
    );
    // Emma adds herself on Thursday.
    let add = srv
        .post(
            &overrides,
            &srv.emma,
            json!({ "start": "2026-03-05T00:00:00Z", "end": "2026-03-06T00:00:00Z", "addUserId": srv.emma_id }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        srv.on_call(&schedule, "2026-03-05T12:00:00Z").await,
        ["enzo", "emma"]
    );
    // The schedule shows them, by start.
    let read = srv
        .get(&format!("/schedules/{}", id(&schedule)), &srv.admin)
        .await
        .expect(StatusCode::OK);
    let starts: Vec<_> = read["overrides"]
        .as_array()
        .expect("overrides")
        .iter()
        .map(|o| t(o["start"].as_str().expect("start")))
        .collect();
    assert_eq!(
        starts,
        [
            t("2026-03-03T00:00:00Z"),
            t("2026-03-05T00:00:00Z"),
            t("2026-03-06T00:00:00Z"),
            t("2026-03-07T00:00:00Z")
        ]
    );
    // An engineer may not manage an override of somebody else.
    srv.post(
        &overrides,
        &srv.enzo,
        json!({ "start": "2026-03-05T00:00:00Z", "end": "2026-03-06T00:00:00Z", "addUserId": srv.admin_id }),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    let add_path = format!("{overrides}/{}", id(&add));
    srv.delete(&add_path, &srv.enzo)
        .await
        .error(StatusCode::FORBIDDEN);
    srv.delete(&add_path, &srv.uma)
        .await
        .error(StatusCode::FORBIDDEN);
    // Emma deletes her own; the admin deletes anybody's.
    srv.delete(&add_path, &srv.emma)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        srv.on_call(&schedule, "2026-03-05T12:00:00Z").await,
        ["enzo"]
    );
    srv.delete(&add_path, &srv.emma)
        .await
        .error(StatusCode::NOT_FOUND);
    srv.delete(&format!("{overrides}/{}", id(&replace)), &srv.admin)
        .await
        .expect(StatusCode::NO_CONTENT);
    assert_eq!(
        srv.on_call(&schedule, "2026-03-03T10:00:00Z").await,
        ["enzo"]
    );
    // The admin adds one for anybody.
    srv.post(
        &overrides,
        &srv.admin,
        json!({ "start": "2026-03-10T00:00:00Z", "end": "2026-03-11T00:00:00Z", "addUserId": srv.admin_id }),
    )
    .await
    .expect(StatusCode::CREATED);
    // Unknown schedule, unknown override, bad override id.
    let nobody = "0190f3c2-7b1e-7c3a-9d4e-1f2a3b4c5d6e";
    srv.post(
        &format!("/schedules/{nobody}/overrides"),
        &srv.admin,
        json!({ "start": "2026-03-10T00:00:00Z", "end": "2026-03-11T00:00:00Z", "addUserId": srv.admin_id }),
    )
    .await
    .error(StatusCode::NOT_FOUND);
    srv.delete(&format!("{overrides}/{nobody}"), &srv.admin)
        .await
        .error(StatusCode::NOT_FOUND);
    srv.delete(&format!("{overrides}/not-an-id"), &srv.admin)
        .await
        .invalid("oid");
    srv.delete(
        &format!("/schedules/not-an-id/overrides/{nobody}"),
        &srv.admin,
    )
    .await
    .invalid("id");
}

// ----- escalation policies and services ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_managed_and_a_used_one_cannot_be_deleted() {
    let srv = start().await;
    let rotation = srv.rotation().await;
    let schedule = srv.schedule(&rotation).await;
    let policy = srv
        .post(
            "/escalation-policies",
            &srv.admin,
            json!({
                "name": "payments",
                "steps": [
                    { "delayMinutes": 5, "targets": [{ "type": "schedule", "id": schedule["id"] }] },
                    { "delayMinutes": 10, "targets": [{ "type": "role", "role": "admin" }, { "type": "assignee" }, { "type": "user", "id": srv.emma_id }, { "type": "rotation", "id": rotation["id"] }] },
                ],
            }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(policy["repeat"], 3, "GoAlert's default");
    assert_eq!(
        policy["steps"][1]["targets"][0],
        json!({ "type": "role", "role": "admin" })
    );
    assert_eq!(
        policy["steps"][1]["targets"][1],
        json!({ "type": "assignee" })
    );
    let path = format!("/escalation-policies/{}", id(&policy));
    assert_eq!(
        srv.get(&path, &srv.enzo).await.expect(StatusCode::OK),
        policy
    );
    let list = srv.get("/escalation-policies", &srv.enzo).await;
    assert!(list.next_link().is_none());
    assert_eq!(list.expect(StatusCode::OK), json!([policy]));
    let changed = srv
        .patch(
            &path,
            &srv.admin,
            json!({ "repeat": 0, "name": "payments (no repeat)" }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(changed["repeat"], 0);
    assert_eq!(changed["steps"], policy["steps"], "unchanged");
    // A service uses it, with an acknowledgement timeout.
    let service = srv
        .post("/services", &srv.admin, json!({ "name": "payments", "escalationPolicyId": policy["id"], "ackTimeoutSeconds": 300 }))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(service["escalationPolicyId"], policy["id"]);
    assert_eq!(service["ackTimeoutSeconds"], 300);
    // What the policy names cannot go while it names it; the policy cannot go
    // while the service uses it.
    srv.delete(&path, &srv.admin)
        .await
        .error(StatusCode::CONFLICT);
    srv.delete(&format!("/schedules/{}", id(&schedule)), &srv.admin)
        .await
        .error(StatusCode::CONFLICT);
    srv.delete(&format!("/rotations/{}", id(&rotation)), &srv.admin)
        .await
        .error(StatusCode::CONFLICT);
    srv.get(&path, &srv.admin).await.expect(StatusCode::OK);
    // The incidents of the service carry the policy.
    let incident = srv
        .post("/incidents", &srv.admin, json!({ "title": "payments are failing", "priority": "high", "serviceId": service["id"] }))
        .await
        .expect(StatusCode::CREATED);
    for field in ["escalationPolicyId", "nextEscalationAt", "ackExpiresAt"] {
        assert!(incident.get(field).is_some(), "{field}: {incident}");
    }
    assert!(
        incident.get("escalationStep").is_none(),
        "internal: {incident}"
    );
    // PATCH null clears; then the policy can go.
    let service_path = format!("/services/{}", id(&service));
    let cleared = srv
        .patch(
            &service_path,
            &srv.admin,
            json!({ "escalationPolicyId": null, "ackTimeoutSeconds": null }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(cleared["escalationPolicyId"], Value::Null);
    assert_eq!(cleared["ackTimeoutSeconds"], Value::Null);
    let set = srv
        .patch(
            &service_path,
            &srv.admin,
            json!({ "escalationPolicyId": policy["id"] }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(set["escalationPolicyId"], policy["id"]);
    assert_eq!(set["ackTimeoutSeconds"], Value::Null, "untouched");
    srv.patch(
        &service_path,
        &srv.admin,
        json!({ "escalationPolicyId": null }),
    )
    .await
    .expect(StatusCode::OK);
    srv.delete(&path, &srv.admin)
        .await
        .expect(StatusCode::NO_CONTENT);
    srv.get(&path, &srv.admin)
        .await
        .error(StatusCode::NOT_FOUND);
    srv.patch(&path, &srv.admin, json!({ "repeat": 1 }))
        .await
        .error(StatusCode::NOT_FOUND);
    srv.delete(&path, &srv.admin)
        .await
        .error(StatusCode::NOT_FOUND);
    // A service cannot name a policy that does not exist.
    srv.patch(
        &service_path,
        &srv.admin,
        json!({ "escalationPolicyId": policy["id"] }),
    )
    .await
    .invalid("escalationPolicyId");
    srv.post(
        "/services",
        &srv.admin,
        json!({ "name": "other", "escalationPolicyId": policy["id"] }),
    )
    .await
    .invalid("escalationPolicyId");
    srv.post(
        "/services",
        &srv.admin,
        json!({ "name": "other", "ackTimeoutSeconds": 0 }),
    )
    .await
    .invalid("ackTimeoutSeconds");
    srv.patch(
        &service_path,
        &srv.admin,
        json!({ "ackTimeoutSeconds": 604801 }),
    )
    .await
    .invalid("ackTimeoutSeconds");
}

// ----- bad input -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_field_and_changes_nothing() {
    let srv = start().await;
    let rotation = srv.rotation().await;
    let schedule = srv.schedule(&rotation).await;
    let rule = |start: &str, end: &str, weekdays: Value| json!({ "name": "bad", "rules": [{ "target": { "type": "rotation", "id": rotation["id"] }, "start": start, "end": end, "weekdays": weekdays }] });
    let rotation_body = |extra: Value| {
        let mut body = json!({ "name": "bad", "type": "daily", "start": ROTATION_START });
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    for (path, body, field) in [
        (
            "/rotations",
            rotation_body(json!({ "timeZone": "Mars/Olympus_Mons" })),
            "timeZone",
        ),
        (
            "/rotations",
            rotation_body(json!({ "type": "fortnightly" })),
            "type",
        ),
        (
            "/rotations",
            rotation_body(json!({ "shiftLength": 0 })),
            "shiftLength",
        ),
        (
            "/rotations",
            rotation_body(json!({ "shiftLength": 9001 })),
            "shiftLength",
        ),
        (
            "/rotations",
            rotation_body(json!({ "start": "next monday" })),
            "start",
        ),
        (
            "/rotations",
            rotation_body(json!({ "participants": ["0190f3c2-7b1e-7c3a-9d4e-1f2a3b4c5d6e"] })),
            "participants",
        ),
        ("/rotations", rotation_body(json!({ "name": " " })), "name"),
        (
            "/schedules",
            json!({ "name": "bad", "timeZone": "Europe/Atlantis" }),
            "timeZone",
        ),
        (
            "/schedules",
            rule("9:00", "17:00", json!(["mon"])),
            "rules[0].start",
        ),
        (
            "/schedules",
            rule("09:00", "24:00", json!(["mon"])),
            "rules[0].end",
        ),
        (
            "/schedules",
            rule("09:00", "17:00", json!(["someday"])),
            "rules[0].weekdays[0]",
        ),
        (
            "/schedules",
            rule("09:00", "17:00", json!([])),
            "rules[0].weekdays",
        ),
        (
            "/escalation-policies",
            json!({ "name": "bad", "repeat": 6, "steps": [{ "delayMinutes": 5, "targets": [{ "type": "assignee" }] }] }),
            "repeat",
        ),
        (
            "/escalation-policies",
            json!({ "name": "bad", "steps": [] }),
            "steps",
        ),
        (
            "/escalation-policies",
            json!({ "name": "bad", "steps": [{ "delayMinutes": 0, "targets": [{ "type": "assignee" }] }] }),
            "steps[0].delayMinutes",
        ),
        (
            "/escalation-policies",
            json!({ "name": "bad", "steps": [{ "delayMinutes": 5, "targets": [] }] }),
            "steps[0].targets",
        ),
        (
            "/escalation-policies",
            json!({ "name": "bad", "steps": [{ "delayMinutes": 5, "targets": [{ "type": "team" }] }] }),
            "steps[0].targets[0].type",
        ),
    ] {
        let a = srv.post(path, &srv.admin, body.clone()).await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "{path} {body}: {}",
            a.body
        );
        assert_eq!(a.body["field"], field, "{path} {body}: {}", a.body);
    }
    // Nothing was made.
    assert_eq!(
        srv.get("/rotations", &srv.admin)
            .await
            .expect(StatusCode::OK)
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        srv.get("/schedules", &srv.admin)
            .await
            .expect(StatusCode::OK)
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        srv.get("/escalation-policies", &srv.admin)
            .await
            .expect(StatusCode::OK),
        json!([])
    );
    // A patch is validated as a creation, and changes nothing when refused.
    let rpath = format!("/rotations/{}", id(&rotation));
    srv.patch(&rpath, &srv.admin, json!({ "timeZone": "Nowhere" }))
        .await
        .invalid("timeZone");
    srv.patch(
        &rpath,
        &srv.admin,
        json!({ "name": "renamed", "shiftLength": 0 }),
    )
    .await
    .invalid("shiftLength");
    assert_eq!(
        srv.get(&rpath, &srv.admin).await.expect(StatusCode::OK),
        rotation
    );
    let spath = format!("/schedules/{}", id(&schedule));
    srv.patch(&spath, &srv.admin, json!({ "rules": [{ "target": { "type": "user", "id": srv.enzo_id }, "start": "09:00", "end": "17:00", "weekdays": [] }] }))
        .await
        .invalid("rules[0].weekdays");
    srv.patch(&spath, &srv.admin, json!({ "version": 7 }))
        .await
        .invalid("version");
    // Overrides: start before end, a user, not ended.
    let overrides = format!("{spath}/overrides");
    for (body, field) in [
        (
            json!({ "start": "2026-03-05T00:00:00Z", "end": "2026-03-05T00:00:00Z", "addUserId": srv.emma_id }),
            "end",
        ),
        (
            json!({ "start": "2026-03-06T00:00:00Z", "end": "2026-03-05T00:00:00Z", "addUserId": srv.emma_id }),
            "end",
        ),
        (
            json!({ "start": "2026-03-05T00:00:00Z", "end": "2026-03-06T00:00:00Z" }),
            "addUserId",
        ),
        (
            json!({ "start": "2026-03-05T00:00:00Z", "end": "tomorrow", "addUserId": srv.emma_id }),
            "end",
        ),
    ] {
        let a = srv.post(&overrides, &srv.admin, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.body);
        assert_eq!(a.body["field"], field, "{body}: {}", a.body);
    }
    assert_eq!(
        srv.get(&spath, &srv.admin).await.expect(StatusCode::OK),
        schedule
    );
    // Query instants: RFC 3339; a range is at most 90 days and ends after it starts.
    let shifts = format!("{spath}/shifts");
    let rshifts = format!("{rpath}/shifts");
    for (uri, field) in [
        (format!("{spath}/on-call?at=yesterday"), "at"),
        (format!("{spath}/on-call?at=2026-03-02"), "at"),
        (format!("{spath}/on-call?at=2026-03-02T10:00:00"), "at"),
        ("/oncall?at=noon".to_owned(), "at"),
        (format!("{shifts}?end=2026-03-03T00:00:00Z"), "start"),
        (format!("{shifts}?start=2026-03-03T00:00:00Z"), "end"),
        (
            format!("{shifts}?start=soon&end=2026-03-03T00:00:00Z"),
            "start",
        ),
        (
            format!("{shifts}?start=2026-03-02T00:00:00Z&end=2026-06-01T00:00:00Z"),
            "end",
        ),
        (
            format!("{shifts}?start=2026-03-03T00:00:00Z&end=2026-03-03T00:00:00Z"),
            "end",
        ),
        (
            format!("{rshifts}?start=2026-03-03T00:00:00Z&end=2026-03-02T00:00:00Z"),
            "end",
        ),
        (
            format!("{rshifts}?start=2026-03-02T00:00:00Z&end=2026-06-01T00:00:00Z"),
            "end",
        ),
        (
            format!("{rshifts}?start=2026-03-02T00:00:00Z&end=later"),
            "end",
        ),
        (
            "/rotations/not-an-id/shifts?start=2026-03-02T00:00:00Z&end=2026-03-03T00:00:00Z"
                .to_owned(),
            "id",
        ),
        ("/schedules/not-an-id".to_owned(), "id"),
        ("/escalation-policies/not-an-id".to_owned(), "id"),
    ] {
        srv.get(&uri, &srv.admin).await.invalid(field);
    }
    // Exactly 90 days is allowed.
    srv.get(
        &format!("{shifts}?start=2026-03-02T00:00:00Z&end=2026-05-31T00:00:00Z"),
        &srv.admin,
    )
    .await
    .expect(StatusCode::OK);
}

// ----- who may do what -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engineers_read_admins_write_users_do_neither() {
    let srv = start().await;
    let rotation = srv.rotation().await;
    let schedule = srv.schedule(&rotation).await;
    let policy = srv
        .post("/escalation-policies", &srv.admin, json!({ "name": "p", "steps": [{ "delayMinutes": 1, "targets": [{ "type": "assignee" }] }] }))
        .await
        .expect(StatusCode::CREATED);
    let reads = [
        "/rotations".to_owned(),
        format!("/rotations/{}", id(&rotation)),
        format!(
            "/rotations/{}/shifts?start=2026-03-02T00:00:00Z&end=2026-03-03T00:00:00Z",
            id(&rotation)
        ),
        "/schedules".to_owned(),
        format!("/schedules/{}", id(&schedule)),
        format!("/schedules/{}/on-call", id(&schedule)),
        format!(
            "/schedules/{}/shifts?start=2026-03-02T00:00:00Z&end=2026-03-03T00:00:00Z",
            id(&schedule)
        ),
        "/oncall".to_owned(),
        "/escalation-policies".to_owned(),
        format!("/escalation-policies/{}", id(&policy)),
        "/users".to_owned(),
    ];
    for uri in &reads {
        srv.get(uri, &srv.enzo).await.expect(StatusCode::OK);
        srv.get(uri, &srv.uma).await.error(StatusCode::FORBIDDEN);
        let a = srv.call(Method::GET, uri, None, None).await;
        a.error(StatusCode::UNAUTHORIZED);
        srv.call(Method::GET, uri, Some("not.a.token"), None)
            .await
            .error(StatusCode::UNAUTHORIZED);
    }
    let writes = [
        (
            Method::POST,
            "/rotations".to_owned(),
            json!({ "name": "r", "type": "daily", "start": ROTATION_START }),
        ),
        (
            Method::PATCH,
            format!("/rotations/{}", id(&rotation)),
            json!({ "name": "r2" }),
        ),
        (
            Method::DELETE,
            format!("/rotations/{}", id(&rotation)),
            Value::Null,
        ),
        (
            Method::POST,
            "/schedules".to_owned(),
            json!({ "name": "s" }),
        ),
        (
            Method::PATCH,
            format!("/schedules/{}", id(&schedule)),
            json!({ "name": "s2" }),
        ),
        (
            Method::DELETE,
            format!("/schedules/{}", id(&schedule)),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/schedules/{}/overrides", id(&schedule)),
            json!({ "start": "2026-03-05T00:00:00Z", "end": "2026-03-06T00:00:00Z", "addUserId": srv.admin_id }),
        ),
        (
            Method::POST,
            "/escalation-policies".to_owned(),
            json!({ "name": "p2", "steps": [{ "delayMinutes": 1, "targets": [{ "type": "assignee" }] }] }),
        ),
        (
            Method::PATCH,
            format!("/escalation-policies/{}", id(&policy)),
            json!({ "repeat": 1 }),
        ),
        (
            Method::DELETE,
            format!("/escalation-policies/{}", id(&policy)),
            Value::Null,
        ),
    ];
    for (method, uri, body) in &writes {
        let body = (!body.is_null()).then(|| body.clone());
        for token in [&srv.enzo, &srv.uma] {
            let a = srv
                .call(method.clone(), uri, Some(token), body.clone())
                .await;
            assert_eq!(
                a.status,
                StatusCode::FORBIDDEN,
                "{method} {uri}: {}",
                a.body
            );
        }
        let a = srv.call(method.clone(), uri, None, body.clone()).await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri}: {}",
            a.body
        );
    }
    // A plain user may not even add himself to a schedule.
    let (uma_me, _) = {
        let me = srv.get("/users/me", &srv.uma).await.expect(StatusCode::OK);
        (me["id"].as_str().expect("id").to_owned(), ())
    };
    srv.post(
        &format!("/schedules/{}/overrides", id(&schedule)),
        &srv.uma,
        json!({ "start": "2026-03-05T00:00:00Z", "end": "2026-03-06T00:00:00Z", "addUserId": uma_me }),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    // Nothing changed.
    assert_eq!(
        srv.get(&format!("/rotations/{}", id(&rotation)), &srv.admin)
            .await
            .expect(StatusCode::OK),
        rotation
    );
    assert_eq!(
        srv.get(&format!("/schedules/{}", id(&schedule)), &srv.admin)
            .await
            .expect(StatusCode::OK),
        schedule
    );
    assert_eq!(
        srv.get("/escalation-policies", &srv.admin)
            .await
            .expect(StatusCode::OK),
        json!([policy])
    );
}

// ----- users ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_listed_and_each_changes_his_own_account() {
    let srv = start().await;
    let all = srv.get("/users", &srv.admin).await.expect(StatusCode::OK);
    let all = all.as_array().expect("array");
    assert_eq!(all.len(), 4);
    for u in all {
        let mut keys: Vec<_> = u.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["id", "name", "role", "timeZone", "username"], "{u}");
    }
    let emma = all.iter().find(|u| u["username"] == "emma").expect("emma");
    assert_eq!(emma["role"], "engineer");
    assert_eq!(emma["timeZone"], "UTC");
    // Paginated like every list.
    let page = srv.get("/users?limit=3", &srv.enzo).await;
    let next = page.next_link().expect("a next page");
    let mut seen: Vec<Value> = page
        .expect(StatusCode::OK)
        .as_array()
        .expect("array")
        .clone();
    assert_eq!(seen.len(), 3);
    seen.extend(
        srv.get(&next, &srv.enzo)
            .await
            .expect(StatusCode::OK)
            .as_array()
            .expect("array")
            .iter()
            .cloned(),
    );
    assert_eq!(&seen, all);
    srv.get("/users?cursor=garbage", &srv.admin)
        .await
        .error(StatusCode::BAD_REQUEST);
    // Every role reads its own account; never its password hash.
    let me = srv.get("/users/me", &srv.uma).await.expect(StatusCode::OK);
    assert_eq!(me["username"], "uma");
    assert_eq!(me["email"], "uma@example.com");
    assert_eq!(me["role"], "user");
    assert_eq!(me["timeZone"], "UTC");
    assert!(
        me.get("passwordHash").is_none() && me.get("password_hash").is_none(),
        "{me}"
    );
    srv.call(Method::GET, "/users/me", None, None)
        .await
        .error(StatusCode::UNAUTHORIZED);
    // Name, email and time zone, without the password.
    let changed = srv
        .patch("/users/me", &srv.uma, json!({ "name": "Uma U.", "email": "uma.u@example.com", "timeZone": "Australia/Lord_Howe" }))
        .await
        .expect(StatusCode::OK);
    assert_eq!(changed["name"], "Uma U.");
    assert_eq!(changed["email"], "uma.u@example.com");
    assert_eq!(changed["timeZone"], "Australia/Lord_Howe");
    assert_eq!(changed["role"], "user");
    assert_eq!(
        srv.get("/users/me", &srv.uma).await.expect(StatusCode::OK),
        changed
    );
    srv.patch("/users/me", &srv.uma, json!({ "timeZone": "Lord/Howe" }))
        .await
        .invalid("timeZone");
    srv.patch("/users/me", &srv.uma, json!({ "role": "admin" }))
        .await
        .invalid("role");
    srv.patch(
        "/users/me",
        &srv.uma,
        json!({ "email": "enzo@example.com" }),
    )
    .await
    .error(StatusCode::CONFLICT);
    // The password needs the current one.
    let new_password = "another long and unusual passphrase";
    srv.patch("/users/me", &srv.uma, json!({ "password": new_password }))
        .await
        .invalid("currentPassword");
    srv.patch(
        "/users/me",
        &srv.uma,
        json!({ "password": new_password, "currentPassword": "not the password" }),
    )
    .await
    .invalid("currentPassword");
    let login = |password: &str| {
        srv.call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({ "username": "uma", "password": password })),
        )
    };
    login(PASSWORD).await.expect(StatusCode::OK);
    srv.patch(
        "/users/me",
        &srv.uma,
        json!({ "password": new_password, "currentPassword": PASSWORD }),
    )
    .await
    .expect(StatusCode::OK);
    login(PASSWORD).await.error(StatusCode::UNAUTHORIZED);
    let token = login(new_password).await.expect(StatusCode::OK);
    assert!(token["token"].is_string());
    assert_eq!(
        srv.get("/users/me", &srv.uma).await.expect(StatusCode::OK)["name"],
        "Uma U."
    );
    // The list shows the new time zone.
    let all = srv.get("/users", &srv.admin).await.expect(StatusCode::OK);
    let uma = all
        .as_array()
        .expect("array")
        .iter()
        .find(|u| u["username"] == "uma")
        .cloned()
        .expect("uma");
    assert_eq!(uma["timeZone"], "Australia/Lord_Howe");
}

// ----- the document -------------------------------------------------------------------

#[tokio::test]
async fn the_openapi_document_describes_the_on_call_routes() {
    let doc = serde_json::to_value(imas_http::openapi::document()).expect("doc");
    let paths = &doc["paths"];
    for (path, methods) in [
        ("/rotations", &["get", "post"][..]),
        ("/rotations/{id}", &["get", "patch", "delete"][..]),
        ("/rotations/{id}/shifts", &["get"][..]),
        ("/schedules", &["get", "post"][..]),
        ("/schedules/{id}", &["get", "patch", "delete"][..]),
        ("/schedules/{id}/overrides", &["post"][..]),
        ("/schedules/{id}/overrides/{oid}", &["delete"][..]),
        ("/schedules/{id}/on-call", &["get"][..]),
        ("/schedules/{id}/shifts", &["get"][..]),
        ("/oncall", &["get"][..]),
        ("/escalation-policies", &["get", "post"][..]),
        ("/escalation-policies/{id}", &["get", "patch", "delete"][..]),
        ("/users", &["get"][..]),
        ("/users/me", &["get", "patch"][..]),
    ] {
        for m in methods {
            let op = &paths[path][m];
            assert!(op.is_object(), "{m} {path}");
            assert_eq!(op["security"], json!([{ "bearer": [] }]), "{m} {path}");
        }
    }
    let params = |path: &str| -> Vec<(String, bool)> {
        paths[path]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| {
                (
                    p["name"].as_str().expect("name").to_owned(),
                    p["required"] == true,
                )
            })
            .collect()
    };
    for path in ["/rotations/{id}/shifts", "/schedules/{id}/shifts"] {
        assert_eq!(
            params(path),
            [("start".to_owned(), true), ("end".to_owned(), true)],
            "{path}"
        );
    }
    for path in ["/schedules/{id}/on-call", "/oncall"] {
        assert_eq!(params(path), [("at".to_owned(), false)], "{path}");
        let at = &paths[path]["get"]["parameters"]
            .as_array()
            .expect("p")
            .iter()
            .find(|p| p["name"] == "at")
            .expect("at")["schema"];
        assert!(at.to_string().contains("date-time"), "{at}");
    }
    for path in ["/rotations", "/schedules", "/escalation-policies", "/users"] {
        assert_eq!(
            params(path),
            [("limit".to_owned(), false), ("cursor".to_owned(), false)],
            "{path}"
        );
    }
    let schemas = &doc["components"]["schemas"];
    let required = |name: &str| -> Vec<String> {
        schemas[name]["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|f| f.as_str().expect("field").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for (name, fields) in [
        (
            "Rotation",
            &[
                "id",
                "name",
                "type",
                "shiftLength",
                "start",
                "timeZone",
                "participants",
                "version",
            ][..],
        ),
        ("NewRotation", &["name", "type", "start"][..]),
        (
            "Schedule",
            &["id", "name", "timeZone", "rules", "overrides", "version"][..],
        ),
        ("ScheduleRule", &["target", "start", "end"][..]),
        ("NewOverride", &["start", "end"][..]),
        (
            "Override",
            &["id", "start", "end", "createdBy", "createdAt"][..],
        ),
        ("Shift", &["userId", "start", "end", "truncated"][..]),
        ("OnCall", &["at", "users"][..]),
        ("OnCallEverywhere", &["at", "schedules"][..]),
        ("ScheduleOnCall", &["scheduleId", "name", "users"][..]),
        (
            "UserSummary",
            &["id", "name", "username", "role", "timeZone"][..],
        ),
        (
            "EscalationPolicy",
            &["id", "name", "repeat", "steps", "version"][..],
        ),
        ("NewEscalationPolicy", &["name", "steps"][..]),
        ("EscalationStep", &["delayMinutes", "targets"][..]),
    ] {
        let got = required(name);
        for f in fields {
            assert!(
                got.iter().any(|g| g == f),
                "{name}.{f} is not required: {got:?}"
            );
        }
    }
    assert_eq!(required("NewSchedule"), ["name"]);
    for name in [
        "RotationPatch",
        "SchedulePatch",
        "EscalationPolicyPatch",
        "ProfilePatch",
        "ServicePatch",
    ] {
        assert_eq!(required(name), Vec::<String>::new(), "{name}");
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
    }
    let text = |v: &Value| v.to_string();
    assert!(text(&schemas["RotationType"]).contains("monthly"));
    assert!(text(&schemas["Weekdays"]).contains("\"sun\""));
    assert!(text(&schemas["ClockTime"]).contains("pattern"));
    for variant in ["user", "schedule", "rotation", "role", "assignee"] {
        assert!(
            text(&schemas["PolicyTarget"]).contains(&format!("\"{variant}\"")),
            "{variant}"
        );
    }
    // Services and incidents show the policy fields.
    for (name, fields) in [
        ("Service", &["escalationPolicyId", "ackTimeoutSeconds"][..]),
        (
            "NewService",
            &["escalationPolicyId", "ackTimeoutSeconds"][..],
        ),
        (
            "ServicePatch",
            &["escalationPolicyId", "ackTimeoutSeconds"][..],
        ),
        (
            "Incident",
            &["escalationPolicyId", "nextEscalationAt", "ackExpiresAt"][..],
        ),
        ("User", &["timeZone"][..]),
        (
            "ProfilePatch",
            &["name", "email", "timeZone", "password", "currentPassword"][..],
        ),
    ] {
        for f in fields {
            assert!(
                schemas[name]["properties"][f].is_object(),
                "{name}.{f}: {}",
                schemas[name]
            );
        }
    }
    assert!(
        schemas["Incident"]["properties"]["escalationStep"].is_null(),
        "internal"
    );
    assert!(
        schemas["User"]["properties"]["passwordHash"].is_null(),
        "never shown"
    );
    // Every $ref points at a schema that exists.
    let all = doc.to_string();
    for piece in all.split("\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').expect("quote")];
        assert!(schemas.get(name).is_some(), "dangling $ref {name}");
    }
}
