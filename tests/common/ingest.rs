//! What the alert-ingestion tests share: a tool they need (skipped by hand
//! when missing, a failure under `CI=true`, as `testkit::service_url` does for
//! services), a service and integration key made over the API, every page of
//! a list, and polling the API until a condition holds or a deadline passes.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// Whether `CI` says this is a CI run.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether the tool a test needs is there (`available`); when it is not,
/// says so and returns false by hand, and fails under CI, which installs it.
pub fn tool(available: bool, what: &str, install: &str) -> bool {
    if !available {
        assert!(
            !under_ci(),
            "{what} is needed under CI=true ({install}; .ci/run installs it)"
        );
        eprintln!("skipping: {what} is not installed ({install})");
    }
    available
}

/// One API call: status and JSON body (`null` when empty).
pub async fn call(
    http: &Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// A token of `username`, signed in over HTTP.
pub async fn login(http: &Client, base: &str, username: &str, password: &str) -> String {
    let (s, v) = call(
        http,
        Method::POST,
        &format!("{base}/auth/login"),
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "login {username}: {v}");
    v["token"].as_str().expect("token").to_string()
}

/// A new service named `name` and an integration of `kind` on it, made by an
/// admin over the API: (service id, integration key).
pub async fn service_with_key(
    http: &Client,
    base: &str,
    admin: &str,
    name: &str,
    kind: &str,
) -> (String, String) {
    let (s, service) = call(
        http,
        Method::POST,
        &format!("{base}/services"),
        Some(admin),
        Some(json!({"name": name, "description": format!("{name}, made by a test")})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "create service: {service}");
    let id = service["id"].as_str().expect("service id").to_string();
    assert_eq!(service["autoResolve"], json!(true), "{service}");
    let (s, integration) = call(
        http,
        Method::POST,
        &format!("{base}/services/{id}/integrations"),
        Some(admin),
        Some(json!({"name": format!("{name} {kind}"), "kind": kind})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "create integration: {integration}");
    assert_eq!(integration["serviceId"], json!(id), "{integration}");
    assert_eq!(integration["kind"], json!(kind), "{integration}");
    let key = integration["key"].as_str().expect("key").to_string();
    assert_eq!(key.len(), 32, "{key}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{key}"
    );
    // Listed without its key from now on.
    let (s, listed) = call(
        http,
        Method::GET,
        &format!("{base}/services/{id}/integrations"),
        Some(admin),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    assert!(
        !listed.to_string().contains(&key),
        "the key is shown again: {listed}"
    );
    (id, key)
}

/// Every item of a paginated list at `url` (with its query), following
/// `Link: rel="next"`.
pub async fn all(http: &Client, base: &str, url: &str, token: &str) -> Vec<Value> {
    let mut url = url.to_string();
    let mut out = Vec::new();
    loop {
        let res = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("page");
        let status = res.status();
        let next = res
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .filter(|l| l.contains("rel=\"next\""))
            .and_then(|l| {
                let start = l.find('<')? + 1;
                let end = l.find('>')?;
                Some(format!("{base}{}", &l[start..end]))
            });
        let text = res.text().await.expect("body");
        assert!(status.is_success(), "{url}: {status}: {text}");
        let items: Vec<Value> = serde_json::from_str(&text).expect("a JSON list");
        out.extend(items);
        match next {
            Some(n) => url = n,
            None => return out,
        }
    }
}

/// Calls `probe` until it returns `Some`, or fails once `limit` has passed,
/// saying `what` it waited for and the last thing it saw (`last`).
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match probe().await {
            Ok(found) => return found,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: not within {limit:?}; last seen: {last}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The audit entries of `action` (newest first).
pub async fn audit(http: &Client, base: &str, token: &str, action: &str) -> Vec<Value> {
    all(http, base, &format!("{base}/audit?action={action}"), token).await
}
