//! Incident reports. [`Engine::export_incidents`](crate::Engine::export_incidents)
//! streams the matching incidents in pages; the writers here turn pages into
//! report bytes as they arrive, so memory does not grow with the row count.
//! CSV (feature `csv`): RFC 4180 quoting, CRLF line ends, instants in ISO 8601 UTC.

#[cfg(feature = "csv")]
pub use self::csv_report::*;

#[cfg(feature = "csv")]
mod csv_report {
    use crate::error::{Error, Result};
    use crate::model::{Incident, Timestamp};

    /// The CSV columns, in order.
    pub const CSV_COLUMNS: [&str; 16] = [
        "id",
        "title",
        "type",
        "priority",
        "status",
        "assignedTo",
        "reportedBy",
        "createdAt",
        "slaHours",
        "slaDeadline",
        "slaBreached",
        "breachedAt",
        "escalationLevel",
        "acknowledgedAt",
        "resolvedAt",
        "closedAt",
    ];

    fn writer() -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new())
    }

    fn finish(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>> {
        w.into_inner()
            .map_err(|e| Error::backend("csv", e.to_string()))
    }

    /// An instant as ISO 8601 UTC with milliseconds, e.g. `2026-01-31T12:00:00.000Z`.
    pub fn iso(t: Timestamp) -> String {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    fn opt_iso(t: Option<Timestamp>) -> String {
        t.map(iso).unwrap_or_default()
    }

    /// The header row.
    pub fn csv_header() -> Result<Vec<u8>> {
        let mut w = writer();
        w.write_record(CSV_COLUMNS)
            .map_err(|e| Error::backend("csv", e))?;
        finish(w)
    }

    /// One row per incident.
    pub fn csv_rows(incidents: &[Incident]) -> Result<Vec<u8>> {
        let mut w = writer();
        for i in incidents {
            let record = [
                i.id.to_string(),
                i.title.clone(),
                i.kind.as_str().to_string(),
                i.priority.as_str().to_string(),
                i.status.as_str().to_string(),
                i.assigned_to.map(|u| u.to_string()).unwrap_or_default(),
                i.reported_by.to_string(),
                iso(i.created_at),
                format!("{}", i.sla_target_ms as f64 / 3_600_000.0),
                iso(i.sla_deadline),
                i.sla_breached.to_string(),
                opt_iso(i.breached_at),
                i.escalation_level.to_string(),
                opt_iso(i.acknowledged_at),
                opt_iso(i.resolved_at),
                opt_iso(i.closed_at),
            ];
            w.write_record(&record)
                .map_err(|e| Error::backend("csv", e))?;
        }
        finish(w)
    }
}
