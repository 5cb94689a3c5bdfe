//! Conformance suites (feature `testkit`): the contract every store and queue
//! adapter must meet, as plain async functions over `&dyn Store` / `&dyn Queue`,
//! and macros that stamp them out as `#[tokio::test]`s in an adapter's tests.
//!
//! ```ignore
//! // imas-store-foo/tests/conformance.rs
//! async fn store() -> Option<Arc<dyn Store>> {
//!     let url = imas_core::testkit::service_url("FOO_URL")?; // skips, or fails under CI=true
//!     Some(Arc::new(FooStore::connect(&url).await.unwrap()))
//! }
//! imas_core::store_conformance_tests!(store);
//! ```
//!
//! A store that cannot report a [generation](crate::ports::ChangeStore::generation)
//! (so that the engine caches nothing read from it) says so:
//! `store_conformance_tests!(store, without_generations)` checks that it never
//! reports one and that an engine on it serves no stale read, instead of
//! checking how its generation moves.
//!
//! The adapter crate needs `tokio` (with `macros` and `rt-multi-thread`) as a
//! dev-dependency.
//!
//! [`fault::FaultyStore`] wraps any store and fails the calls a test chooses.

pub mod alerts;
pub mod cancel;
pub mod escalation_policies;
pub mod fault;
pub mod integrations;
pub mod queue;
pub mod rotations;
pub mod schedules;
pub mod services;
pub mod store;
pub mod users;
mod versioned;

/// The URL of a service a test needs, from the environment variable `var`.
///
/// Returns `None` (after saying so on stderr) when it is unset, so that a person
/// running `cargo test` without the service skips those tests. Under `CI=true` a
/// missing URL panics instead: CI must never skip a backend silently.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "{var} is not set but CI=true: backend tests must run in CI, not be skipped"
            );
            eprintln!("skipping: set {var} to run this test against a real server");
            None
        }
    }
}

/// The text of a PDF, page by page, as poppler's `pdftotext -layout` extracts
/// it (pages are separated by form feeds).
///
/// Returns `None` (after saying so) when `pdftotext` is not installed; under
/// `CI=true` that panics instead (`.ci/run` installs poppler-utils).
pub fn pdf_text(pdf: &[u8]) -> Option<Vec<String>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "pdftotext is not available but CI=true: {e}");
            eprintln!("skipping PDF text checks: pdftotext (poppler-utils) not found");
            return None;
        }
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let input = pdf.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("pdftotext");
    writer.join().expect("writer").expect("write pdf");
    assert!(out.status.success(), "pdftotext rejected the PDF");
    let text = String::from_utf8(out.stdout).expect("utf-8 text");
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    Some(pages)
}

/// Stamps out every store conformance test as a `#[tokio::test]`. The argument
/// names an `async fn() -> Option<Arc<dyn Store>>` that returns a fresh, empty
/// store for each test (or `None` to skip).
///
/// The store must report a generation (within 10 s of opening); one that
/// cannot declares it with `store_conformance_tests!(factory,
/// without_generations)`, and is checked to report none and to be read through.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path) => {
        $crate::__store_conformance_tests!($factory);
        $crate::__conformance_tests!(store, $factory;
            dropped_commits_move_generation,
            generations,
        );
    };
    ($factory:path, without_generations) => {
        $crate::__store_conformance_tests!($factory);
        $crate::__conformance_tests!(store_arc, $factory;
            reads_through_without_generation,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_tests {
    ($factory:path) => {
        $crate::__conformance_tests!(store, $factory;
            users_and_uniqueness,
            incident_versions,
            change_is_atomic,
            concurrent_changes_fail_alone,
            dropped_commits_are_whole,
            outbox_insert_is_idempotent,
            keyset_pagination,
            incident_filters,
            hostile_search_is_data,
            claim_due,
            concurrent_claims_are_exclusive,
            audit_log,
            notifications,
            channel_receipts,
            outbox_relay_contract,
            every_audit_action_round_trips,
            retention_prunes_delivered,
        );
        $crate::__conformance_tests!(services, $factory;
            services_crud,
            services_name_conflict,
            services_paging,
        );
        $crate::__conformance_tests!(integrations, $factory;
            integrations_lifecycle,
            integrations_hash_conflict,
        );
        $crate::__conformance_tests!(alerts, $factory;
            alerts_insert_and_read,
            alert_status_semantics,
            alert_dedup_is_enforced,
            concurrent_alert_dedup,
            repeat_trigger_counts,
            alert_filters_and_paging,
            incident_group_key_unique,
        );
        $crate::__conformance_tests!(users, $factory;
            users_keep_time_zone,
            users_listed_newest_first,
            profile_updates,
        );
        $crate::__conformance_tests!(rotations, $factory;
            rotations_crud,
            rotations_round_trip,
            rotations_paging,
        );
        $crate::__conformance_tests!(schedules, $factory;
            schedules_crud,
            schedules_round_trip,
            schedules_paging,
        );
        $crate::__conformance_tests!(escalation_policies, $factory;
            escalation_policies_crud,
            escalation_policies_round_trip,
            escalation_policies_paging,
            services_keep_policy_and_ack_timeout,
            incidents_keep_policy_state,
            on_call_change_is_atomic,
        );
    };
}

/// Stamps out every queue conformance test as a `#[tokio::test]`. The argument
/// names an `async fn(ManualClock) -> Option<Arc<dyn Queue>>` returning a fresh,
/// empty queue that reads time from the given clock and retries with
/// [`queue::RETRY`].
#[macro_export]
macro_rules! queue_conformance_tests {
    ($factory:path) => {
        $crate::__conformance_tests!(queue, $factory;
            enqueue_reserve_ack,
            visibility_timeout_redelivers,
            retry_backoff_and_dead_letter,
            delayed_jobs,
            concurrent_reservers_share_nothing,
            stale_reservations_change_nothing,
            ack_and_reserve,
            permanent_failure_dead_letters_at_once,
            one_live_job_per_key,
            extend_keeps_a_reservation,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    (store, $factory:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(store) = $factory().await else { return };
                $crate::testkit::store::$name(&*store).await;
            }
        )+
    };
    (store_arc, $factory:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(store) = $factory().await else { return };
                $crate::testkit::store::$name(store).await;
            }
        )+
    };
    (queue, $factory:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let clock = $crate::ports::ManualClock::new($crate::testkit::store::t0());
                let Some(queue) = $factory(clock.clone()).await else { return };
                $crate::testkit::queue::$name(&*queue, &clock).await;
            }
        )+
    };
    // Any other suite module over `&dyn Store` (services, integrations, alerts,
    // users, rotations, schedules, escalation_policies).
    ($suite:ident, $factory:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(store) = $factory().await else { return };
                $crate::testkit::$suite::$name(&*store).await;
            }
        )+
    };
}
