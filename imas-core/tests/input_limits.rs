//! SPEC §7 (input) in the model and the engine: dates outside years 1..=9999,
//! cursors that no page made, over-long or too many search terms are validation
//! errors naming the parameter, whatever store is behind; a long word is indexed
//! by its first [`MAX_TERM_CHARS`] characters.

mod common;

use imas_core::Error;
use imas_core::engine::NewIncident;
use imas_core::model::{
    AuditFilter, Cursor, IncidentFilter, MAX_QUERY_TERMS, MAX_TERM_CHARS, PageRequest,
    check_instant, from_millis, query_terms, search_terms,
};

fn field(e: Error) -> String {
    match e {
        Error::Validation { field, .. } => field,
        other => panic!("expected a validation error, got {other}"),
    }
}

#[test]
fn long_words_are_indexed_by_their_prefix_and_refused_in_queries() {
    let word = "Ab".repeat(1_500);
    let terms = search_terms(&format!("short {word} tail"));
    let prefix: String = word.to_lowercase().chars().take(MAX_TERM_CHARS).collect();
    assert_eq!(terms, vec![prefix.clone(), "short".into(), "tail".into()]);
    assert_eq!(
        query_terms(&prefix).expect("a 64-character term"),
        vec![prefix]
    );
    assert_eq!(
        field(query_terms(&word).expect_err("3,000 characters")),
        "q"
    );
    let just_over = "x".repeat(MAX_TERM_CHARS + 1);
    assert_eq!(field(query_terms(&just_over).expect_err("65")), "q");
    // Multi-byte characters count as characters, not bytes.
    let wide = "漢".repeat(MAX_TERM_CHARS);
    assert_eq!(query_terms(&wide).expect("64 wide characters").len(), 1);
    assert_eq!(search_terms(&"漢".repeat(3_000)), vec![wide]);
}

#[test]
fn queries_have_at_most_32_distinct_terms() {
    let words: Vec<String> = (0..=MAX_QUERY_TERMS).map(|n| format!("w{n}")).collect();
    let max = words[..MAX_QUERY_TERMS].join(" ");
    assert_eq!(query_terms(&max).expect("32 terms").len(), MAX_QUERY_TERMS);
    // Repeated words are one term.
    assert!(query_terms(&format!("{max} {max} W0")).is_ok());
    assert_eq!(
        field(query_terms(&words.join(" ")).expect_err("33 terms")),
        "q"
    );
}

#[test]
fn instants_outside_years_1_to_9999_are_refused() {
    let first = -62_135_596_800_000; // 0001-01-01T00:00:00.000Z
    let last = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    assert!(check_instant("startDate", from_millis(first)).is_ok());
    assert!(check_instant("startDate", from_millis(last)).is_ok());
    for ms in [first - 1, last + 1, i64::MIN, i64::MAX] {
        assert_eq!(
            field(check_instant("endDate", from_millis(ms)).expect_err("out")),
            "endDate"
        );
    }
    let id = uuid::Uuid::now_v7();
    for ms in [first, 0, last] {
        let c = Cursor::after(from_millis(ms), id);
        assert_eq!(Cursor::decode(&c.encode()).expect("round trip"), c);
    }
    for ms in [first - 1, last + 1, i64::MIN, i64::MAX] {
        let text = format!("{ms}.{}", id.simple());
        assert_eq!(field(Cursor::decode(&text).expect_err(&text)), "cursor");
        let page = PageRequest {
            limit: 10,
            cursor: Some(Cursor::after(from_millis(ms), id)),
        };
        assert_eq!(field(page.validate().expect_err("built by hand")), "cursor");
    }
}

#[test]
fn filters_name_the_parameter_at_fault() {
    let year_zero = from_millis(-62_135_596_800_001);
    let cases = [
        (
            IncidentFilter {
                created_from: Some(year_zero),
                ..Default::default()
            },
            "startDate",
        ),
        (
            IncidentFilter {
                created_to: Some(from_millis(i64::MAX)),
                ..Default::default()
            },
            "endDate",
        ),
        (
            IncidentFilter {
                q: Some("w".repeat(100)),
                ..Default::default()
            },
            "q",
        ),
    ];
    for (filter, name) in cases {
        assert_eq!(field(filter.validate().expect_err(name)), name);
    }
    let audit = [
        (
            AuditFilter {
                from: Some(year_zero),
                ..Default::default()
            },
            "from",
        ),
        (
            AuditFilter {
                to: Some(from_millis(i64::MIN)),
                ..Default::default()
            },
            "to",
        ),
        (
            AuditFilter {
                target: Some("a\0b".into()),
                ..Default::default()
            },
            "target",
        ),
    ];
    for (filter, name) in audit {
        assert_eq!(field(filter.validate().expect_err(name)), name);
    }
}

/// The engine validates before any store sees the query, for every caller
/// (an embedding host as much as the HTTP API); a long word is stored whole.
#[tokio::test]
async fn the_engine_refuses_bad_filters_and_stores_long_words() {
    let w = common::world();
    let root = w.root().await;
    let word = "z".repeat(3_000);
    let created = w
        .engine
        .create_incident(
            &root,
            NewIncident {
                title: "long".into(),
                description: Some(word.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("a 3,000-character word is stored");
    let found = w
        .engine
        .list_incidents(
            &root,
            &IncidentFilter {
                q: Some("z".repeat(MAX_TERM_CHARS)),
                ..Default::default()
            },
            PageRequest::default(),
        )
        .await
        .expect("search by the prefix");
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].id, created.id);
    assert_eq!(found.items[0].description, word);
    let bad = IncidentFilter {
        q: Some(word),
        ..Default::default()
    };
    let e = w
        .engine
        .list_incidents(&root, &bad, PageRequest::default())
        .await
        .expect_err("over-long term");
    assert_eq!(field(e), "q");
    assert!(w.engine.export_incidents(&root, bad, 100).is_err());
    let e = w
        .engine
        .list_audit(
            &root,
            &AuditFilter {
                from: Some(from_millis(i64::MIN)),
                ..Default::default()
            },
            PageRequest::default(),
        )
        .await
        .expect_err("year -262143");
    assert_eq!(field(e), "from");
    for (title, description, name) in [
        ("a\0b", None, "title"),
        ("ok", Some("a\0b".to_string()), "description"),
    ] {
        let e = w
            .engine
            .create_incident(
                &root,
                NewIncident {
                    title: title.into(),
                    description,
                    ..Default::default()
                },
            )
            .await
            .expect_err("NUL");
        assert_eq!(field(e), name);
    }
}
