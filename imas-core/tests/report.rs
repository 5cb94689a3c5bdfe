//! CSV reports: what is written parses back, with the csv crate, into exactly the
//! stored incidents, hostile titles included; pages stream every incident once.

mod common;

use futures::StreamExt;
use imas_core::engine::NewIncident;
use imas_core::model::{IncidentFilter, Priority, Role, Status};
use imas_core::report::{CSV_COLUMNS, csv_header, csv_rows, iso};

#[tokio::test]
async fn csv_round_trips_every_incident() {
    let w = common::world();
    let root = w.root().await;
    let titles = [
        "plain",
        "comma, inside",
        "quote \" inside",
        "\"starts with a quote",
        "new\nline and\r\ncrlf",
        "=SUM(A1:A9) looks like a formula",
        "é ü – ß 漢字 🔥",
        "   spaces around   ",
    ];
    let mut created = Vec::new();
    for (n, t) in titles.iter().cycle().take(1_203).enumerate() {
        let priority = Priority::ALL[n % 4];
        let inc = w
            .engine
            .create_incident(
                &root,
                NewIncident {
                    title: t.to_string(),
                    priority: Some(priority),
                    ..Default::default()
                },
            )
            .await
            .expect("create");
        created.push(inc);
        w.advance(std::time::Duration::from_millis(3));
    }
    w.engine
        .change_status(&root, created[0].id, Status::Resolved)
        .await
        .expect("resolve");
    let mut bytes = csv_header().expect("header");
    let mut pages = 0;
    let mut stream = Box::pin(
        w.engine
            .export_incidents(&root, IncidentFilter::default(), 500)
            .expect("export"),
    );
    while let Some(page) = stream.next().await {
        bytes.extend(csv_rows(&page.expect("page")).expect("rows"));
        pages += 1;
    }
    assert_eq!(pages, 3, "1,203 incidents in pages of 500");
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    assert_eq!(
        reader
            .headers()
            .expect("headers")
            .iter()
            .collect::<Vec<_>>(),
        CSV_COLUMNS.to_vec()
    );
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), created.len());
    let by_id: std::collections::HashMap<String, &csv::StringRecord> =
        records.iter().map(|r| (r[0].to_string(), r)).collect();
    for inc in &created {
        let now = w.engine.get_incident(&root, inc.id).await.expect("get");
        let r = by_id
            .get(&inc.id.to_string())
            .expect("every incident exactly once");
        // A title that starts like a formula comes back with a leading `'`
        // (SPEC §7); every other title round-trips unchanged.
        let expected = if now.title.starts_with('=') {
            format!("'{}", now.title)
        } else {
            now.title.clone()
        };
        assert_eq!(&r[1], expected, "title round-trips");
        assert_eq!((&r[3], &r[4]), (now.priority.as_str(), now.status.as_str()));
        assert_eq!(&r[7], iso(now.created_at));
        assert_eq!(&r[9], iso(now.sla_deadline));
        assert_eq!(
            r[8].parse::<f64>().expect("hours"),
            now.sla_target_ms as f64 / 3_600_000.0
        );
        assert_eq!(&r[14], now.resolved_at.map(iso).unwrap_or_default());
    }
    assert!(
        std::str::from_utf8(&bytes).expect("utf-8").contains("\r\n"),
        "RFC 4180 line ends"
    );
}

/// SPEC §7: a cell that starts with `=`, `+`, `-`, `@`, tab or carriage return is
/// written with a leading `'`, so that no spreadsheet runs it as a formula; the
/// same characters elsewhere in a cell are left alone.
#[test]
fn csv_cells_that_start_like_a_formula_are_neutralised() {
    let now = imas_core::model::from_millis(1_767_225_600_000);
    let cases = [
        (
            "=HYPERLINK(\"http://x\",\"y\")",
            "'=HYPERLINK(\"http://x\",\"y\")",
        ),
        ("=1+2", "'=1+2"),
        ("+1+2", "'+1+2"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1+2", "'\t=1+2"),
        ("\r=1+2", "'\r=1+2"),
        ("a=1+2", "a=1+2"),
        ("1-2", "1-2"),
        (" =1", " =1"),
        ("'quoted", "'quoted"),
    ];
    for (title, cell) in cases {
        let incident =
            imas_core::model::Incident::open(title, imas_core::model::UserId::new(), now);
        let mut bytes = csv_header().expect("header");
        bytes.extend(csv_rows(&[incident]).expect("row"));
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let record = reader
            .records()
            .next()
            .expect("one row")
            .expect("valid CSV");
        assert_eq!(&record[1], cell, "title {title:?}");
        assert_eq!(record.len(), CSV_COLUMNS.len(), "title {title:?}");
        // No other cell of the row starts like a formula.
        for (n, field) in record.iter().enumerate().filter(|(n, _)| *n != 1) {
            assert!(
                !field.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "column {} = {field:?}",
                CSV_COLUMNS[n]
            );
        }
    }
}

#[tokio::test]
async fn exports_follow_filters_and_roles() {
    let w = common::world();
    let root = w.root().await;
    let user = w.user("someone", Role::User).await;
    for p in [Priority::Low, Priority::High, Priority::High] {
        w.engine
            .create_incident(
                &root,
                NewIncident {
                    title: "t".into(),
                    priority: Some(p),
                    ..Default::default()
                },
            )
            .await
            .expect("create");
    }
    let high = IncidentFilter {
        priority: vec![Priority::High],
        ..Default::default()
    };
    let pages: Vec<_> = w
        .engine
        .export_incidents(&root, high, 1)
        .expect("export")
        .collect()
        .await;
    let count: usize = pages.into_iter().map(|p| p.expect("page").len()).sum();
    assert_eq!(count, 2);
    let none = IncidentFilter {
        status: vec![Status::Closed],
        ..Default::default()
    };
    let pages: Vec<_> = w
        .engine
        .export_incidents(&root, none, 50)
        .expect("export")
        .collect()
        .await;
    assert_eq!(
        pages
            .into_iter()
            .map(|p| p.expect("page").len())
            .sum::<usize>(),
        0,
        "an empty report is valid"
    );
    assert!(matches!(
        w.engine
            .export_incidents(&user, IncidentFilter::default(), 50)
            .map(|_| ()),
        Err(imas_core::Error::Forbidden { .. })
    ));
}
