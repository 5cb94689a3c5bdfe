//! The texts people read: notification messages, audit descriptions and error
//! texts, one function each, so that the wording lives in one place and the
//! engine's use cases read as rules. Titles are quoted, instants are RFC 3339.
//! Public are only the answers a front end gives back after a use case.

use std::fmt::Display;
use std::net::IpAddr;
use std::time::Duration;

use crate::model::{IncidentId, IntegrationKind, Priority, Role, Severity, Status, Timestamp};

/// An incident title as texts show it: in double quotes.
pub(crate) fn quoted(title: &str) -> String {
    format!("\"{title}\"")
}

/// Where a sign-in came from, for its audit entry.
pub(crate) fn from_where(client: Option<IpAddr>) -> String {
    match client {
        Some(ip) => format!("from {ip}"),
        None => "from an unknown address".to_string(),
    }
}

/// `: reason` after an escalation's text, or nothing.
fn because(reason: Option<&str>) -> String {
    reason.map(|r| format!(": {r}")).unwrap_or_default()
}

// ----- answers (what a front end says back after a use case) ---------------------

/// The answer to an SLA assignment: the new resolution target, in hours.
pub fn answer_sla_assigned(sla_target_ms: i64) -> String {
    format!("SLA of {}h assigned", sla_target_ms as f64 / 3_600_000.0)
}

/// The answer to a manual escalation: the level the incident is at now.
pub fn answer_escalated(level: u32) -> String {
    format!("Incident escalated to level {level}")
}

/// The answer to a dead letter's redrive.
pub const ANSWER_REDRIVEN: &str = "redriven: the workers will deliver it again";

// ----- users ----------------------------------------------------------------------

/// Audit: an account was created.
pub(crate) fn user_registered(username: &str, role: Role) -> String {
    format!("user {username} registered with role {role}")
}

/// Audit: a sign-in succeeded.
pub(crate) fn signed_in(username: &str, client: Option<IpAddr>) -> String {
    format!("{username} signed in {}", from_where(client))
}

/// Audit: a sign-in failed (the username is the entry's target).
pub(crate) fn sign_in_failed(client: Option<IpAddr>) -> String {
    format!("failed sign-in {}", from_where(client))
}

/// Error: the last admin cannot be demoted.
pub(crate) fn last_admin(username: &str) -> String {
    format!("{username} is the last admin and cannot be demoted; make another admin first")
}

/// Audit: a user's role changed.
pub(crate) fn role_changed(username: &str, from: Role, to: Role) -> String {
    format!("role of {username} changed from {from} to {to}")
}

// ----- incidents ------------------------------------------------------------------

/// Notification: the recipient was assigned an incident.
pub(crate) fn assigned(title: &str) -> String {
    format!("You were assigned incident {}", quoted(title))
}

/// Audit: an incident was reported.
pub(crate) fn incident_created(title: &str, priority: Priority) -> String {
    format!("incident {} created ({priority} priority)", quoted(title))
}

/// Error: the caller reached the report limit.
pub(crate) fn report_limit(max: u32, window: Duration) -> String {
    format!(
        "at most {max} incidents may be reported per {} s; try again later",
        window.as_secs()
    )
}

/// Error: an update expected another version than the stored one.
pub(crate) fn stale_version(id: IncidentId, current: i64, expected: i64) -> String {
    format!("incident {id} is at version {current}, not {expected}; reload and retry")
}

/// Audit: some fields of an incident changed (named as in the API).
pub(crate) fn incident_updated(title: &str, changed: &[&str]) -> String {
    format!("incident {} updated: {}", quoted(title), changed.join(", "))
}

/// Audit: an incident's status changed.
pub(crate) fn status_changed(from: Status, to: Status) -> String {
    format!("status changed from {from} to {to}")
}

/// Audit: an incident was deleted.
pub(crate) fn incident_deleted(title: &str) -> String {
    format!("incident {} deleted", quoted(title))
}

// ----- SLA and escalation -----------------------------------------------------------

/// Audit: an admin re-assigned an incident's SLA.
pub(crate) fn sla_assigned(
    title: &str,
    target_ms: i64,
    priority: Priority,
    deadline: Timestamp,
) -> String {
    format!(
        "SLA of {}h assigned to {} ({priority} priority), deadline {}",
        target_ms as f64 / 3_600_000.0,
        quoted(title),
        deadline.to_rfc3339()
    )
}

/// Error: a closed or resolved incident cannot be escalated.
pub(crate) fn not_escalatable(id: IncidentId, status: Status) -> String {
    format!("incident {id} is {status} and cannot be escalated")
}

/// Audit: an admin escalated an incident.
pub(crate) fn escalated_manually(title: &str, level: u32, reason: Option<&str>) -> String {
    format!(
        "incident {} escalated manually to level {level}{}",
        quoted(title),
        because(reason)
    )
}

/// Notification: an incident was escalated by an admin.
pub(crate) fn escalated_notice(title: &str, level: u32, reason: Option<&str>) -> String {
    format!(
        "Incident {} escalated to level {level}{}",
        quoted(title),
        because(reason)
    )
}

/// Audit: nobody acknowledged an incident by its response deadline.
pub(crate) fn response_missed(title: &str, deadline: Timestamp) -> String {
    format!(
        "response target missed for {}: still open at {}",
        quoted(title),
        deadline.to_rfc3339()
    )
}

/// Notification: the response target was missed.
pub(crate) fn response_missed_notice(title: &str) -> String {
    format!(
        "Response target missed for {}: nobody has acknowledged it yet",
        quoted(title)
    )
}

/// Audit and notification: an incident's SLA is at risk.
pub(crate) fn at_risk(title: &str, deadline: Timestamp) -> String {
    format!(
        "SLA at risk for {}: deadline {}",
        quoted(title),
        deadline.to_rfc3339()
    )
}

/// Audit: an incident's SLA was violated.
pub(crate) fn breached(title: &str, deadline: Timestamp) -> String {
    format!(
        "SLA violated for {}: deadline {}",
        quoted(title),
        deadline.to_rfc3339()
    )
}

/// Notification: an incident's SLA was violated.
pub(crate) fn breached_notice(title: &str) -> String {
    format!("SLA violated for {}", quoted(title))
}

/// Audit: the breach itself raised the incident to level 1.
pub(crate) fn escalated_at_breach(title: &str) -> String {
    format!(
        "incident {} escalated to level 1 at SLA breach",
        quoted(title)
    )
}

/// Audit: the sweep raised an incident's escalation level.
pub(crate) fn escalated_automatically(title: &str, level: u32) -> String {
    format!(
        "incident {} escalated automatically to level {level}",
        quoted(title)
    )
}

/// Notification: the sweep raised an incident's escalation level.
pub(crate) fn escalated_unacknowledged(title: &str, level: u32) -> String {
    format!(
        "Incident {} escalated to level {level}: SLA breached and not acknowledged",
        quoted(title)
    )
}

// ----- escalation policies (stepping) -------------------------------------------

/// How position `n` (0-based, repeats counted) of a run through a policy of
/// `steps` steps reads: `step 2 of escalation policy "Primary"`, and which
/// repeat when the steps run again.
fn policy_step(policy: &str, n: u32, steps: usize) -> String {
    let steps = u32::try_from(steps.max(1)).unwrap_or(u32::MAX);
    let (step, repeat) = (n % steps + 1, n / steps);
    let name = quoted(policy);
    match repeat {
        0 => format!("step {step} of escalation policy {name}"),
        r => format!("step {step} of escalation policy {name} (repeat {r})"),
    }
}

/// `1 user`, `3 users`.
fn users(n: usize) -> String {
    match n {
        1 => "1 user".to_string(),
        n => format!("{n} users"),
    }
}

/// Audit: a step of an incident's escalation policy paged somebody.
pub(crate) fn policy_step_paged(
    title: &str,
    policy: &str,
    n: u32,
    steps: usize,
    level: u32,
    paged: usize,
) -> String {
    format!(
        "incident {} escalated automatically to level {level}: {} paged {}",
        quoted(title),
        policy_step(policy, n, steps),
        users(paged)
    )
}

/// Audit: an admin escalated an incident of a policy: its next step ran.
pub(crate) fn policy_step_escalated_manually(
    title: &str,
    policy: &str,
    n: u32,
    steps: usize,
    level: u32,
    paged: usize,
    reason: Option<&str>,
) -> String {
    format!(
        "incident {} escalated manually to level {level}: {} paged {}{}",
        quoted(title),
        policy_step(policy, n, steps),
        users(paged),
        because(reason)
    )
}

/// Notification: a step of an incident's escalation policy pages you.
pub(crate) fn policy_step_notice(
    title: &str,
    policy: &str,
    n: u32,
    steps: usize,
    level: u32,
    reason: Option<&str>,
) -> String {
    let why = match reason {
        Some(_) => because(reason),
        None => ": not acknowledged yet".to_string(),
    };
    format!(
        "Incident {} escalated to level {level} ({}){why}",
        quoted(title),
        policy_step(policy, n, steps)
    )
}

/// Audit: a step of an incident's escalation policy resolved to nobody.
pub(crate) fn policy_step_skipped(title: &str, policy: &str, n: u32, steps: usize) -> String {
    format!(
        "{} skipped for incident {}: nobody to page (no one on call, or an unassigned incident)",
        policy_step(policy, n, steps),
        quoted(title)
    )
}

/// Audit: the escalation policy an incident pages through was deleted.
pub(crate) fn policy_gone(title: &str) -> String {
    format!(
        "escalation of incident {} ended: its escalation policy no longer exists",
        quoted(title)
    )
}

/// Audit: an incident's acknowledgement expired and it is open again.
pub(crate) fn ack_expired(title: &str, at: Timestamp) -> String {
    format!(
        "acknowledgement of incident {} expired at {} without a resolution: open again",
        quoted(title),
        at.to_rfc3339()
    )
}

/// Notification: an incident's acknowledgement expired.
pub(crate) fn ack_expired_notice(title: &str) -> String {
    format!(
        "Incident {} is open again: it was acknowledged but not resolved in time",
        quoted(title)
    )
}

// ----- notifications ----------------------------------------------------------------

/// Error: a user opened more live streams than allowed.
pub(crate) fn too_many_streams(max: usize) -> String {
    format!("at most {max} live notification streams per user are open at once")
}

/// Audit: an admin redrove a dead letter.
pub(crate) fn dead_letter_redriven(key: &str) -> String {
    format!("dead-lettered notification {key} redriven")
}

/// Error: a queued job's payload is no notification intent.
pub(crate) fn not_an_intent(error: impl Display) -> String {
    format!("job payload is not a notification intent: {error}")
}

// ----- services, integrations, alerts -----------------------------------------------

/// Audit: a service was created.
pub(crate) fn service_created(name: &str) -> String {
    format!("service {} created", quoted(name))
}

/// Audit: some fields of a service changed (named as in the API).
pub(crate) fn service_updated(name: &str, changed: &[&str]) -> String {
    format!("service {} updated: {}", quoted(name), changed.join(", "))
}

/// Audit: a service was deleted.
pub(crate) fn service_deleted(name: &str) -> String {
    format!("service {} deleted", quoted(name))
}

/// Error: a service with open incidents cannot be deleted.
pub(crate) fn service_has_open_incidents(name: &str, open: u64) -> String {
    format!(
        "service {} has {open} open incident(s); resolve or close them before deleting it",
        quoted(name)
    )
}

/// Error: `serviceId` names no service.
pub(crate) const NO_SUCH_SERVICE: &str = "no service has this id";

/// Audit: an integration key was created.
pub(crate) fn integration_created(name: &str, kind: IntegrationKind, service: &str) -> String {
    format!(
        "{kind} integration {} created for service {}",
        quoted(name),
        quoted(service)
    )
}

/// Audit: an integration key was revoked.
pub(crate) fn integration_revoked(name: &str, kind: IntegrationKind) -> String {
    format!("{kind} integration {} revoked", quoted(name))
}

/// Events v2 error: the routing key is unknown, revoked or of another kind
/// (one of the `errors` of a 400).
pub(crate) const UNKNOWN_ROUTING_KEY: &str = "'routing_key' is not a valid integration key (unknown, revoked, or not an Events v2 integration)";

/// Events v2 error: an acknowledge or resolve without a dedup key.
pub(crate) const EVENT_NEEDS_DEDUP_KEY: &str =
    "'dedup_key' is required for acknowledge and resolve events";

/// Events v2 error: a trigger without a payload.
pub(crate) const EVENT_NEEDS_PAYLOAD: &str = "'payload' is missing";

/// Error: a missing, unknown, revoked or wrong-kind Alertmanager key.
pub(crate) const UNKNOWN_ALERTMANAGER_KEY: &str =
    "expected the key of an Alertmanager integration (Authorization: Bearer <key>)";

/// Error: an integration key went over its event rate limit.
pub(crate) fn ingest_limit(max: u32, window: Duration) -> String {
    format!(
        "at most {max} events may be posted per {} s with one integration key; try again later",
        window.as_secs()
    )
}

/// Error: racing writers kept changing the same alert or incident.
pub(crate) const ALERT_CONTENDED: &str =
    "the alert's incident kept changing concurrently; try again";

/// Audit: a new alert was triggered.
pub(crate) fn alert_triggered(summary: &str, severity: Severity, source: &str) -> String {
    format!(
        "alert {} triggered ({severity}) from {source}",
        quoted(summary)
    )
}

/// Audit: an alert was acknowledged.
pub(crate) fn alert_acknowledged(summary: &str) -> String {
    format!("alert {} acknowledged", quoted(summary))
}

/// Audit: an alert was resolved.
pub(crate) fn alert_resolved(summary: &str) -> String {
    format!("alert {} resolved", quoted(summary))
}

/// Audit: an incident resolved itself when its last alert resolved.
pub(crate) fn incident_auto_resolved(title: &str) -> String {
    format!(
        "incident {} resolved automatically: all its alerts resolved",
        quoted(title)
    )
}

// ----- people on call: users' profiles, rotations, schedules, policies --------------

/// Audit: a user changed some profile fields (named as in the API).
pub(crate) fn profile_updated(username: &str, changed: &[&str]) -> String {
    format!("{username} updated their profile: {}", changed.join(", "))
}

/// Audit: a user changed their password.
pub(crate) fn password_changed(username: &str) -> String {
    format!("{username} changed their password")
}

/// Error: a new password without the current one.
pub(crate) const CURRENT_PASSWORD_REQUIRED: &str = "expected the current password to set a new one";

/// Error: the current password given does not match.
pub(crate) const CURRENT_PASSWORD_WRONG: &str = "does not match the current password";

/// A password change that lost to another change of the same password.
pub(crate) const PASSWORD_CHANGED_MEANWHILE: &str =
    "the password was changed by another request meanwhile; sign in again and retry";

/// Audit: a rotation was created.
pub(crate) fn rotation_created(name: &str, participants: usize) -> String {
    format!(
        "rotation {} created with {participants} participant(s)",
        quoted(name)
    )
}

/// Audit: some fields of a rotation changed (named as in the API).
pub(crate) fn rotation_updated(name: &str, changed: &[&str]) -> String {
    format!("rotation {} updated: {}", quoted(name), changed.join(", "))
}

/// Audit: a rotation was deleted.
pub(crate) fn rotation_deleted(name: &str) -> String {
    format!("rotation {} deleted", quoted(name))
}

/// Audit: a schedule was created.
pub(crate) fn schedule_created(name: &str, rules: usize) -> String {
    format!("schedule {} created with {rules} rule(s)", quoted(name))
}

/// Audit: some fields of a schedule changed (named as in the API).
pub(crate) fn schedule_updated(name: &str, changed: &[&str]) -> String {
    format!("schedule {} updated: {}", quoted(name), changed.join(", "))
}

/// Audit: a schedule was deleted.
pub(crate) fn schedule_deleted(name: &str) -> String {
    format!("schedule {} deleted", quoted(name))
}

/// What an override does, for its audit entries: `adds ada`, `removes bob`,
/// `replaces bob with ada`, from `start` until `end`.
pub(crate) fn override_what(
    add: Option<&str>,
    remove: Option<&str>,
    start: Timestamp,
    end: Timestamp,
) -> String {
    let what = match (add, remove) {
        (Some(a), Some(r)) => format!("replaces {r} with {a}"),
        (Some(a), None) => format!("adds {a}"),
        (None, Some(r)) => format!("removes {r}"),
        (None, None) => "changes nobody".to_string(),
    };
    format!(
        "{what} from {} until {}",
        start.to_rfc3339(),
        end.to_rfc3339()
    )
}

/// Audit: an override was added to a schedule.
pub(crate) fn override_created(schedule: &str, id: impl Display, what: &str) -> String {
    format!(
        "override {id} added to schedule {}: {what}",
        quoted(schedule)
    )
}

/// Audit: an override was deleted from a schedule.
pub(crate) fn override_deleted(schedule: &str, id: impl Display, what: &str) -> String {
    format!(
        "override {id} deleted from schedule {}: {what}",
        quoted(schedule)
    )
}

/// Error: an engineer's override that neither adds nor removes himself.
pub(crate) const OWN_OVERRIDES_ONLY: &str =
    "an engineer may add or delete only overrides that add or remove himself";

/// Error: an override naming nobody.
pub(crate) const OVERRIDE_NOBODY: &str = "expected addUserId, removeUserId or both (a replacement)";

/// Error: an override replacing a user with himself.
pub(crate) const OVERRIDE_SAME_USER: &str = "expected another user than addUserId";

/// Error: an override whose end is not after its start (in whole minutes).
pub(crate) const OVERRIDE_EMPTY: &str =
    "expected an instant after start (both are taken to the minute)";

/// Error: an override that has already ended.
pub(crate) const OVERRIDE_IN_THE_PAST: &str =
    "expected an instant in the future: an override cannot end in the past";

/// Error: a schedule rule on no weekday.
pub(crate) const NO_WEEKDAYS: &str = "expected at least one weekday (omit weekdays for every day)";

/// Error: a schedule keeps no more overrides.
pub(crate) fn too_many_overrides(schedule: &str, max: usize) -> String {
    format!(
        "schedule {} already has {max} overrides (the most it keeps); delete some first",
        quoted(schedule)
    )
}

/// Audit: an escalation policy was created.
pub(crate) fn escalation_policy_created(name: &str, steps: usize) -> String {
    format!(
        "escalation policy {} created with {steps} step(s)",
        quoted(name)
    )
}

/// Audit: some fields of an escalation policy changed (named as in the API).
pub(crate) fn escalation_policy_updated(name: &str, changed: &[&str]) -> String {
    format!(
        "escalation policy {} updated: {}",
        quoted(name),
        changed.join(", ")
    )
}

/// Audit: an escalation policy was deleted.
pub(crate) fn escalation_policy_deleted(name: &str) -> String {
    format!("escalation policy {} deleted", quoted(name))
}

/// Error: something cannot be deleted while another thing names it, e.g.
/// `rotation "primary" is used by schedule "after hours"`.
pub(crate) fn in_use(kind: &str, name: &str, by_kind: &str, by_name: &str) -> String {
    format!(
        "{kind} {} is used by {by_kind} {}; remove it from there before deleting it",
        quoted(name),
        quoted(by_name)
    )
}

/// Error: an id names nothing of its kind (`kind`: user, rotation...).
pub(crate) fn no_such(kind: &str, id: impl Display) -> String {
    format!("no {kind} has the id {id}")
}

/// Error: an on-call range whose end is not after its start.
pub(crate) const RANGE_EMPTY: &str = "expected an instant after start";

/// Error: an on-call range longer than the longest answered.
pub(crate) fn range_too_long(max_days: i64) -> String {
    format!("expected at most {max_days} days after start")
}

// ----- validation -------------------------------------------------------------------

/// Error: a text's length (in characters) is outside `min..=max`.
pub(crate) fn wrong_length(min: usize, max: usize, n: usize) -> String {
    let expected = if min == 0 {
        format!("at most {max} characters")
    } else {
        format!("{min} to {max} characters")
    };
    format!("expected {expected}, got {n}")
}

/// Error: not one email address, with why.
pub(crate) fn not_an_email(why: impl Display) -> String {
    format!("expected one email address such as ada@example.com ({why})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::from_millis;

    #[test]
    fn titles_are_quoted_and_instants_are_rfc3339() {
        let t = from_millis(0);
        assert_eq!(quoted("Disk full"), "\"Disk full\"");
        assert_eq!(
            at_risk("Disk full", t),
            "SLA at risk for \"Disk full\": deadline 1970-01-01T00:00:00+00:00"
        );
        assert_eq!(
            sla_assigned("db", 5_400_000, Priority::High, t),
            "SLA of 1.5h assigned to \"db\" (high priority), deadline 1970-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn escalation_texts_carry_the_reason_only_when_given() {
        assert_eq!(
            escalated_manually("db", 2, Some("customer down")),
            "incident \"db\" escalated manually to level 2: customer down"
        );
        assert_eq!(
            escalated_notice("db", 2, None),
            "Incident \"db\" escalated to level 2"
        );
    }

    #[test]
    fn sign_ins_say_where_from() {
        let ip: IpAddr = "192.0.2.7".parse().expect("address");
        assert_eq!(signed_in("ada", Some(ip)), "ada signed in from 192.0.2.7");
        assert_eq!(
            sign_in_failed(None),
            "failed sign-in from an unknown address"
        );
    }

    #[test]
    fn lengths_say_the_bounds_and_what_came() {
        assert_eq!(
            wrong_length(0, 10, 11),
            "expected at most 10 characters, got 11"
        );
        assert_eq!(wrong_length(3, 50, 2), "expected 3 to 50 characters, got 2");
    }

    #[test]
    fn the_report_limit_names_its_window_in_seconds() {
        assert_eq!(
            report_limit(60, Duration::from_secs(3600)),
            "at most 60 incidents may be reported per 3600 s; try again later"
        );
    }
}
