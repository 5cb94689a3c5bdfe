//! SLA policies and their arithmetic: targets per priority, deadlines that pause
//! while an incident is on hold, and the at-risk instant. Which step is due when
//! is decided by [`crate::escalation::next_step`], the one rule the sweep applies.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::model::{Incident, Priority, Timestamp, millis, plus_ms};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// Resolution and response targets per priority, and the at-risk fraction.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicy {
    resolution_ms: [i64; 4],
    response_ms: [i64; 4],
    at_risk: f64,
}

impl Default for SlaPolicy {
    /// SPEC defaults: resolution low 48h, medium 24h, high 4h, critical 1h;
    /// response low 8h, medium 4h, high 1h, critical 15 min; at risk at 80%.
    fn default() -> Self {
        Self {
            resolution_ms: [48 * HOUR, 24 * HOUR, 4 * HOUR, HOUR],
            response_ms: [8 * HOUR, 4 * HOUR, HOUR, 15 * MINUTE],
            at_risk: 0.8,
        }
    }
}

impl SlaPolicy {
    /// Resolution target for a priority, in milliseconds.
    pub fn resolution_ms(&self, p: Priority) -> i64 {
        self.resolution_ms[p.index()]
    }

    /// Response target for a priority, in milliseconds.
    pub fn response_ms(&self, p: Priority) -> i64 {
        self.response_ms[p.index()]
    }

    /// The at-risk fraction (0 < f <= 1).
    pub fn at_risk_fraction(&self) -> f64 {
        self.at_risk
    }

    /// Sets the resolution target of one priority (at least 1 ms).
    pub fn with_resolution(mut self, p: Priority, target: Duration) -> Result<Self> {
        self.resolution_ms[p.index()] = target_ms("resolution target", target)?;
        Ok(self)
    }

    /// Sets the response target of one priority (at least 1 ms).
    pub fn with_response(mut self, p: Priority, target: Duration) -> Result<Self> {
        self.response_ms[p.index()] = target_ms("response target", target)?;
        Ok(self)
    }

    /// Sets the at-risk fraction; it must be in `(0, 1]`.
    pub fn with_at_risk_fraction(mut self, fraction: f64) -> Result<Self> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::config(
                "at-risk fraction",
                "expected a number greater than 0 and at most 1, e.g. 0.8",
            ));
        }
        self.at_risk = fraction;
        Ok(self)
    }

    /// Applies a spec such as `low=48h,critical=2s` to the resolution targets;
    /// priorities left out keep their value. `name` names the setting in errors.
    pub fn with_resolution_spec(mut self, name: &str, spec: &str) -> Result<Self> {
        for (p, d) in parse_priority_durations(name, spec)? {
            self.resolution_ms[p.index()] = target_ms(name, d)?;
        }
        Ok(self)
    }

    /// Like [`SlaPolicy::with_resolution_spec`], for the response targets.
    pub fn with_response_spec(mut self, name: &str, spec: &str) -> Result<Self> {
        for (p, d) in parse_priority_durations(name, spec)? {
            self.response_ms[p.index()] = target_ms(name, d)?;
        }
        Ok(self)
    }

    /// Milliseconds into the resolution target at which an incident is at risk.
    pub fn at_risk_offset_ms(&self, target_ms: i64) -> i64 {
        (target_ms as f64 * self.at_risk).round() as i64
    }

    /// Sets an incident's targets from `priority` and recomputes its deadlines.
    /// Time already spent on hold keeps counting as paused.
    pub fn assign(&self, incident: &mut Incident, priority: Priority) {
        incident.priority = priority;
        incident.sla_target_ms = self.resolution_ms(priority);
        incident.response_target_ms = self.response_ms(priority);
        recompute_deadlines(incident);
    }

    /// The instant the at-risk warning is due (shifted by time on hold).
    pub fn at_risk_instant(&self, incident: &Incident) -> Timestamp {
        plus_ms(
            incident.created_at,
            self.at_risk_offset_ms(incident.sla_target_ms) + incident.held_ms,
        )
    }
}

fn target_ms(name: &str, d: Duration) -> Result<i64> {
    let ms = millis(d);
    if !(1..=10 * 365 * 24 * HOUR).contains(&ms) {
        return Err(Error::config(
            name,
            "expected a duration from 1ms to 10 years",
        ));
    }
    Ok(ms)
}

/// Recomputes `sla_deadline` (created + target + time on hold before the current
/// hold) and `response_deadline` (created + response target).
pub fn recompute_deadlines(incident: &mut Incident) {
    incident.sla_deadline = plus_ms(
        incident.created_at,
        incident.sla_target_ms + incident.held_ms,
    );
    incident.response_deadline = plus_ms(incident.created_at, incident.response_target_ms);
}

/// Starts the SLA pause (the incident enters `on-hold`).
pub fn pause(incident: &mut Incident, now: Timestamp) {
    if incident.hold_started_at.is_none() {
        incident.hold_started_at = Some(now);
    }
}

/// Ends the SLA pause (the incident leaves `on-hold`): the time on hold is added
/// to the deadline.
pub fn resume(incident: &mut Incident, now: Timestamp) {
    if let Some(start) = incident.hold_started_at.take() {
        incident.held_ms += (now - start).num_milliseconds().max(0);
        recompute_deadlines(incident);
    }
}

/// Parses a duration such as `2s`, `15m`, `1h`, `1h30m`, `500ms`, `2d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u128 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_ms = total_ms.checked_add(n.checked_mul(unit)?)?;
    }
    Some(Duration::from_millis(u64::try_from(total_ms).ok()?))
}

/// Parses `priority=duration` pairs separated by commas, e.g.
/// `low=48h,medium=24h,high=4h,critical=1h`. `name` names the setting in errors.
pub fn parse_priority_durations(name: &str, spec: &str) -> Result<Vec<(Priority, Duration)>> {
    let expected = "expected priority=duration pairs separated by commas, e.g. low=48h,medium=24h,high=4h,critical=2s";
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (p, d) = part
            .split_once('=')
            .ok_or_else(|| Error::config(name, expected))?;
        let p: Priority = p
            .trim()
            .parse()
            .map_err(|_| Error::config(name, format!("unknown priority {p:?}; {expected}")))?;
        let d = parse_duration(d)
            .ok_or_else(|| Error::config(name, format!("bad duration {d:?}; {expected}")))?;
        out.push((p, d));
    }
    if out.is_empty() {
        return Err(Error::config(name, expected));
    }
    Ok(out)
}
