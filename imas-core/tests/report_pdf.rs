//! PDF reports, read back with poppler's `pdftotext`: the titles (non-Latin ones
//! included), the filters, the summary figures computed from the incidents, the
//! page numbers, and the page count of a 5,000-incident report.

use imas_core::model::plus_ms;
use imas_core::model::{Incident, Priority, Status, UserId};
use imas_core::report::pdf::{FIRST_PAGE_ROWS, ROWS_PER_PAGE};
use imas_core::report::{PdfMeta, PdfReport};
use imas_core::testkit::pdf_text;
use imas_core::testkit::store::t0;

fn incidents(n: usize) -> Vec<Incident> {
    let reporter = UserId::new();
    (0..n)
        .map(|k| {
            let created = plus_ms(t0(), k as i64 * 1000);
            let mut i = Incident::open(format!("incident number {k}"), reporter, created);
            i.priority = Priority::ALL[k % 4];
            i.status = Status::ALL[k % Status::ALL.len()];
            i.sla_breached = k % 5 == 0;
            if k % 2 == 0 {
                i.acknowledged_at = Some(plus_ms(created, 90 * 60_000));
            }
            i
        })
        .collect()
}

fn render(rows: &[Incident], filters: Vec<(String, String)>) -> Vec<u8> {
    let mut report = PdfReport::new(PdfMeta {
        filters,
        generated_at: plus_ms(t0(), 3_600_000),
    })
    .expect("report");
    let mut pdf = Vec::new();
    for page in rows.chunks(500) {
        report.push(page).expect("push");
        pdf.extend(report.take());
    }
    pdf.extend(report.finish().expect("finish"));
    pdf
}

#[test]
fn titles_filters_and_summary_are_in_the_text() {
    let mut rows = incidents(10);
    let titles = [
        "Café crème: Überlauf – Straße", // é ü – ß
        "comma, \"quote\" and\nnewline",
        "漢字のタイトル",
        &"a very long title that cannot fit in its column ".repeat(10),
    ];
    for (i, t) in rows.iter_mut().zip(titles) {
        i.title = t.to_string();
    }
    let pdf = render(&rows, vec![("priority".into(), "high,critical".into())]);
    assert!(pdf.starts_with(b"%PDF-1.7"));
    let Some(pages) = pdf_text(&pdf) else { return };
    assert_eq!(pages.len(), 1);
    let text = &pages[0];
    for want in [
        "Incident report",
        "Filters: priority = high,critical",
        "Generated: 2026-01-01 01:00:00 UTC",
        "Café crème: Überlauf – Straße",
        "comma, \"quote\" and newline",
        "page 1 of 1",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    let long = text
        .lines()
        .find(|l| l.contains("a very long title"))
        .expect("the long title's row");
    assert!(
        long.contains("cannot fit in its column a very long")
            && long.contains('…')
            && long.matches("a very long").count() < 10,
        "cut with an ellipsis: {long}"
    );
    assert!(
        text.contains("???????"),
        "CJK the font lacks is drawn as '?'"
    );
    let breached = rows.iter().filter(|i| i.sla_breached).count();
    let summary = format!("Incidents: {}    SLA breached: {breached}", rows.len());
    assert!(
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(&summary.split_whitespace().collect::<Vec<_>>().join(" ")),
        "{summary:?} missing from:\n{text}"
    );
    let by_priority: Vec<String> = Priority::ALL
        .iter()
        .map(|p| format!("{p} {}", rows.iter().filter(|i| i.priority == *p).count()))
        .collect();
    assert!(
        text.contains(&format!("By priority: {}", by_priority.join(" · "))),
        "{text}"
    );
    let acked = rows.iter().filter(|i| i.acknowledged_at.is_some()).count();
    assert!(
        text.contains(&format!(
            "Mean time to acknowledge: 1 h 30 min ({acked} acknowledged)"
        )),
        "{text}"
    );
}

#[test]
fn an_empty_report_is_one_valid_page() {
    let pdf = render(&[], Vec::new());
    let Some(pages) = pdf_text(&pdf) else { return };
    assert_eq!(pages.len(), 1);
    for want in [
        "Filters: none",
        "Incidents: 0",
        "No incidents match",
        "page 1 of 1",
    ] {
        assert!(pages[0].contains(want), "{want:?} missing:\n{}", pages[0]);
    }
}

#[test]
fn five_thousand_incidents_fill_the_expected_pages_in_order() {
    let rows = incidents(5_000);
    let pdf = render(&rows, Vec::new());
    let Some(pages) = pdf_text(&pdf) else { return };
    let rest = (rows.len() as u32 - FIRST_PAGE_ROWS).div_ceil(ROWS_PER_PAGE);
    let expected = 1 + rest as usize;
    assert_eq!(pages.len(), expected);
    let mut next = 0;
    for (n, page) in pages.iter().enumerate() {
        assert!(
            page.contains(&format!("page {} of {expected}", n + 1)),
            "page {} has no number:\n{page}",
            n + 1
        );
        assert!(
            page.contains("Title") && page.contains("SLA deadline"),
            "header row repeated"
        );
        // The rows on this page are the next ones, in order, none lost.
        let ids: Vec<&str> = page
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.len() == 36 && w.matches('-').count() == 4)
            .collect();
        let cap = if n == 0 {
            FIRST_PAGE_ROWS
        } else {
            ROWS_PER_PAGE
        } as usize;
        assert!(ids.len() <= cap);
        for id in ids {
            assert_eq!(
                id,
                rows[next].id.to_string(),
                "row {next} on page {}",
                n + 1
            );
            next += 1;
        }
    }
    assert_eq!(next, rows.len(), "every incident is in the table once");
}
