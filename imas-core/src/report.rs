//! Incident reports. [`Engine::export_incidents`](crate::Engine::export_incidents)
//! streams the matching incidents in pages; the writers here turn pages into
//! report bytes as they arrive, so memory does not grow with the row count.
//! CSV (feature `csv`): RFC 4180 quoting, CRLF line ends, instants in ISO 8601 UTC,
//! free text that starts like a spreadsheet formula neutralised with a leading `'`.
//! PDF (feature `pdf`): see [`pdf_report`].

#[cfg(feature = "csv")]
pub use self::csv_report::*;
#[cfg(feature = "pdf")]
pub use self::pdf_report::{PdfMeta, PdfReport};

#[cfg(feature = "pdf")]
#[path = "report_pdf.rs"]
pub mod pdf_report;

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
            out.extend_from_slice(
                i.reported_by
                    .0
                    .hyphenated()
                    .encode_lower(&mut uuid)
                    .as_bytes(),
            );
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
}

/// Writes `t` as ISO 8601 UTC with milliseconds (`2026-01-31T12:00:00.000Z`)
/// into `buf` and returns it; years outside 0..=9999 are clamped to that range.
#[cfg(any(feature = "csv", feature = "pdf"))]
pub(crate) fn iso_into(t: crate::model::Timestamp, buf: &mut [u8; 24]) -> &str {
    let ms = t.timestamp_millis();
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999);
    put(buf, 0, 4, year);
    put(buf, 5, 2, month);
    put(buf, 8, 2, day);
    buf[4] = b'-';
    buf[7] = b'-';
    time_into(ms_of_day, buf);
    std::str::from_utf8(buf).unwrap_or_default()
}

/// Writes `v` as `width` decimal digits at `at`.
#[cfg(any(feature = "csv", feature = "pdf"))]
fn put(buf: &mut [u8; 24], at: usize, width: usize, mut v: i64) {
    for k in (0..width).rev() {
        buf[at + k] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The `THH:MM:SS.mmmZ` part of [`iso_into`].
#[cfg(any(feature = "csv", feature = "pdf"))]
fn time_into(ms_of_day: i64, buf: &mut [u8; 24]) {
    put(buf, 11, 2, ms_of_day / 3_600_000);
    put(buf, 14, 2, ms_of_day / 60_000 % 60);
    put(buf, 17, 2, ms_of_day / 1000 % 60);
    put(buf, 20, 3, ms_of_day % 1000);
    for (at, c) in [(10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')] {
        buf[at] = c;
    }
}

#[cfg(all(test, any(feature = "csv", feature = "pdf")))]
mod tests {
    use chrono::{TimeZone, Utc};

    #[test]
    fn iso_matches_chrono_across_the_calendar() {
        let mut buf = [0u8; 24];
        let mut t = Utc
            .with_ymd_and_hms(1970, 1, 1, 0, 0, 0)
            .single()
            .expect("date");
        let end = Utc
            .with_ymd_and_hms(2400, 3, 1, 0, 0, 0)
            .single()
            .expect("date");
        while t < end {
            let want = t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            assert_eq!(super::iso_into(t, &mut buf), want);
            t += chrono::Duration::milliseconds(86_400_000 * 3 + 3_723_456);
        }
    }
}
