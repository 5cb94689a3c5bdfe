//! The CSV report (feature `csv`): RFC 4180 quoting, CRLF line ends, instants in
//! ISO 8601 UTC, free text that starts like a spreadsheet formula neutralised
//! with a leading `'`. [`csv_header`] once, then [`csv_rows`] per page.

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

fn writer() -> ::csv::Writer<Vec<u8>> {
    ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

fn finish(w: ::csv::Writer<Vec<u8>>) -> Result<Vec<u8>> {
    w.into_inner()
        .map_err(|e| Error::backend("csv", e.to_string()))
}

/// An instant as ISO 8601 UTC with milliseconds, e.g. `2026-01-31T12:00:00.000Z`.
pub fn iso(t: Timestamp) -> String {
    let mut buf = [0u8; 24];
    super::iso_into(t, &mut buf).to_string()
}

/// The header row.
pub fn csv_header() -> Result<Vec<u8>> {
    let mut w = writer();
    w.write_record(CSV_COLUMNS)
        .map_err(|e| Error::backend("csv", e))?;
    finish(w)
}

/// One row per incident. The fields IMAS produces (ids, names, instants,
/// numbers) never need quoting and never start like a formula, and are
/// written as they are; free text (the title) starts with `'` when it would
/// start like a formula, and is quoted by RFC 4180 when it holds a comma, a
/// quote or a line end.
pub fn csv_rows(incidents: &[Incident]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(incidents.len() * 320);
    let mut uuid = [0u8; 36];
    let mut iso = IsoWriter::default();
    let mut num = itoa::Buffer::new();
    for i in incidents {
        out.extend_from_slice(i.id.0.hyphenated().encode_lower(&mut uuid).as_bytes());
        out.push(b',');
        quoted(&mut out, &i.title);
        for s in [i.kind.as_str(), i.priority.as_str(), i.status.as_str()] {
            out.push(b',');
            out.extend_from_slice(s.as_bytes());
        }
        out.push(b',');
        if let Some(a) = i.assigned_to {
            out.extend_from_slice(a.0.hyphenated().encode_lower(&mut uuid).as_bytes());
        }
        out.push(b',');
        if let Some(r) = i.reported_by {
            out.extend_from_slice(r.0.hyphenated().encode_lower(&mut uuid).as_bytes());
        }
        out.push(b',');
        iso.write(&mut out, Some(i.created_at));
        out.push(b',');
        if i.sla_target_ms % 3_600_000 == 0 {
            out.extend_from_slice(num.format(i.sla_target_ms / 3_600_000).as_bytes());
        } else {
            let hours = i.sla_target_ms as f64 / 3_600_000.0;
            out.extend_from_slice(hours.to_string().as_bytes());
        }
        out.push(b',');
        iso.write(&mut out, Some(i.sla_deadline));
        out.extend_from_slice(if i.sla_breached {
            b",true,"
        } else {
            b",false,"
        });
        iso.write(&mut out, i.breached_at);
        out.push(b',');
        out.extend_from_slice(num.format(i.escalation_level).as_bytes());
        for t in [i.acknowledged_at, i.resolved_at, i.closed_at] {
            out.push(b',');
            iso.write(&mut out, t);
        }
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

/// The characters that make a spreadsheet read a cell as a formula (or, for
/// tab and carriage return, hide one) when a cell starts with them.
pub const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Free text as a CSV cell: a leading `'` when it starts with one of
/// [`FORMULA_STARTS`] (spreadsheet formula injection, SPEC §7), then RFC 4180:
/// a field with a comma, a quote or a line end is enclosed in quotes, its
/// quotes doubled.
fn quoted(out: &mut Vec<u8>, field: &str) {
    let neutralise = field.starts_with(FORMULA_STARTS);
    if !field
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        if neutralise {
            out.push(b'\'');
        }
        out.extend_from_slice(field.as_bytes());
        return;
    }
    out.push(b'"');
    if neutralise {
        out.push(b'\'');
    }
    for part in field.split_inclusive('"') {
        out.extend_from_slice(part.as_bytes());
        if part.ends_with('"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

/// ISO 8601 writer that reuses the date part while instants share a day.
#[derive(Default)]
struct IsoWriter {
    buf: [u8; 24],
    day: Option<i64>,
}

impl IsoWriter {
    fn write(&mut self, out: &mut Vec<u8>, t: Option<Timestamp>) {
        let Some(t) = t else { return };
        let ms = t.timestamp_millis();
        let day = ms.div_euclid(86_400_000);
        if self.day == Some(day) {
            super::time_into(ms.rem_euclid(86_400_000), &mut self.buf);
        } else {
            super::iso_into(t, &mut self.buf);
            self.day = Some(day);
        }
        out.extend_from_slice(&self.buf);
    }
}
