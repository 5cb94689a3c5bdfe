//! The migrations of issues 17 and 18 on a database the earlier migrations
//! made, with incidents and a user in it: every incident reads back as it was
//! (its reporter kept, source `manual`, no service, no alerts, no escalation
//! policy), search still finds it, the indexes are all there, (SQLite, whose
//! table is rebuilt) a new incident never takes the `seq` of a deleted one,
//! and the user reads back with the time zone `UTC`.

#![cfg(all(feature = "sqlite", feature = "postgres"))]

use imas_core::model::{
    Incident, IncidentFilter, IncidentSource, PageRequest, UserId, incident_terms,
};
use imas_core::ports::{Change, ChangeStore, IncidentStore, IncidentWrite, UserStore};
use imas_core::testkit::service_url;
use imas_core::testkit::store::{at, incident, user};
use imas_store_sqlx::{PostgresStore, SqliteStore};
use sqlx::migrate::Migrator;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The migrations before `version`.
fn before(all: &Migrator, version: i64) -> Migrator {
    Migrator::with_migrations(
        all.iter()
            .filter(|m| m.version < version)
            .cloned()
            .collect(),
    )
}

/// The columns incidents had before issue 17.
const OLD_COLUMNS: &str = "id, title, description, kind, priority, status, assigned_to, \
    reported_by, created_at, updated_at, sla_target_ms, sla_deadline, response_target_ms, \
    response_deadline, response_breached_at, at_risk_at, sla_breached, breached_at, \
    escalation_level, escalated_at, acknowledged_at, resolved_at, closed_at, held_ms, \
    hold_started_at, next_due_at, version";

fn old_incidents() -> Vec<Incident> {
    [
        "Printer on fire",
        "Database migration stuck",
        "Payroll export late",
    ]
    .iter()
    .enumerate()
    .map(|(n, title)| {
        let mut i = incident(UserId::new(), title, at(n as i64 * 1_000));
        i.description = format!("reported by team {n}");
        i
    })
    .collect()
}

fn page() -> PageRequest {
    PageRequest {
        limit: 50,
        cursor: None,
    }
}

async fn search(store: &dyn IncidentStore, q: &str) -> Vec<Incident> {
    let filter = IncidentFilter {
        q: Some(q.into()),
        ..IncidentFilter::default()
    };
    store
        .list_incidents(&filter, page())
        .await
        .expect("search")
        .items
}

/// The user the old database holds (no time zone then).
fn old_user() -> imas_core::model::User {
    user("olduser", imas_core::model::Role::Engineer)
}

const OLD_USER: &str = "INSERT INTO users (id, name, username, email, password_hash, role, \
    created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// The old user reads back as it was, in `UTC`.
async fn check_migrated_user(store: &dyn UserStore, old: &imas_core::model::User) {
    let back = store
        .get_user(old.id)
        .await
        .expect("read")
        .expect("migrated user");
    assert_eq!(back.time_zone, chrono_tz::UTC);
    assert_eq!(&back, old);
}

/// What every migrated incident must read back as.
async fn check_migrated(store: &dyn IncidentStore, kept: &[Incident]) {
    for i in kept {
        let back = store
            .get_incident(i.id)
            .await
            .expect("read")
            .expect("migrated incident");
        assert_eq!(&back, i);
        assert_eq!(back.reported_by, i.reported_by);
        assert!(back.reported_by.is_some());
        assert_eq!(back.source, IncidentSource::Manual);
        assert_eq!((back.service_id, back.alert_count), (None, 0));
        assert_eq!(back.group_key, None);
        assert_eq!((back.escalation_policy_id, back.escalation_step), (None, 0));
        assert_eq!((back.next_escalation_at, back.ack_expires_at), (None, None));
    }
    assert_eq!(search(store, "printer fire").await, vec![kept[0].clone()]);
    assert_eq!(search(store, "migration").await, vec![kept[1].clone()]);
    let all = store
        .list_incidents(&IncidentFilter::default(), page())
        .await
        .expect("list");
    assert_eq!(all.items.len(), kept.len());
}

#[tokio::test]
async fn sqlite_incidents_survive_the_rebuild() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("migrate-{}.db", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}", path.display());
    let incidents = old_incidents();
    let u = old_user();
    let deleted_seq: i64;
    {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true),
            )
            .await
            .expect("old database");
        before(&SQLITE_MIGRATIONS, 4)
            .run(&pool)
            .await
            .expect("old migrations");
        let params = (1..=27).map(|n| format!("${n}")).collect::<Vec<_>>();
        let insert = format!(
            "INSERT INTO incidents ({OLD_COLUMNS}) VALUES ({})",
            params.join(", ")
        );
        let ms = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis();
        for i in &incidents {
            sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                .bind(i.id.0)
                .bind(&i.title)
                .bind(&i.description)
                .bind(i.kind.as_str())
                .bind(i.priority.as_str())
                .bind(i.status.as_str())
                .bind(i.assigned_to.map(|u| u.0))
                .bind(i.reported_by.map(|u| u.0))
                .bind(ms(i.created_at))
                .bind(ms(i.updated_at))
                .bind(i.sla_target_ms)
                .bind(ms(i.sla_deadline))
                .bind(i.response_target_ms)
                .bind(ms(i.response_deadline))
                .bind(i.response_breached_at.map(ms))
                .bind(i.at_risk_at.map(ms))
                .bind(i.sla_breached)
                .bind(i.breached_at.map(ms))
                .bind(i64::from(i.escalation_level))
                .bind(i.escalated_at.map(ms))
                .bind(i.acknowledged_at.map(ms))
                .bind(i.resolved_at.map(ms))
                .bind(i.closed_at.map(ms))
                .bind(i.held_ms)
                .bind(i.hold_started_at.map(ms))
                .bind(i.next_due_at.map(ms))
                .bind(i.version)
                .execute(&pool)
                .await
                .expect("old incident");
            sqlx::query(
                "INSERT INTO incident_search (rowid, terms) SELECT seq, $1 FROM incidents \
                 WHERE id = $2",
            )
            .bind(incident_terms(i).join(" "))
            .bind(i.id.0)
            .execute(&pool)
            .await
            .expect("old search row");
        }
        // The newest one is deleted (with its search row), as the store does:
        // its seq must not be given again.
        let last = incidents.last().expect("three");
        deleted_seq = sqlx::query_scalar("SELECT seq FROM incidents WHERE id = $1")
            .bind(last.id.0)
            .fetch_one(&pool)
            .await
            .expect("seq");
        sqlx::query("DELETE FROM incident_search WHERE rowid = $1")
            .bind(deleted_seq)
            .execute(&pool)
            .await
            .expect("delete search row");
        sqlx::query("DELETE FROM incidents WHERE seq = $1")
            .bind(deleted_seq)
            .execute(&pool)
            .await
            .expect("delete");
        sqlx::query(OLD_USER)
            .bind(u.id.0)
            .bind(&u.name)
            .bind(&u.username)
            .bind(&u.email)
            .bind(&u.password_hash)
            .bind(u.role.as_str())
            .bind(ms(u.created_at))
            .execute(&pool)
            .await
            .expect("old user");
        pool.close().await;
    }
    let kept = &incidents[..2];

    let store = SqliteStore::connect(&url).await.expect("migrate");
    check_migrated(&store, kept).await;
    check_migrated_user(&store, &u).await;

    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'incidents' \
         AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name",
    )
    .fetch_all(store.pool())
    .await
    .expect("indexes");
    assert_eq!(
        indexes,
        [
            "incidents_by_assignee",
            "incidents_by_created",
            "incidents_by_priority",
            "incidents_by_reporter",
            "incidents_by_service",
            "incidents_by_status",
            "incidents_by_status_priority",
            "incidents_due",
            "incidents_escalated",
            "incidents_open_deadline",
            "incidents_open_group",
        ]
    );

    // A new incident, with no reporter, takes a seq after the deleted one,
    // and search finds it alone.
    let mut fresh = incident(UserId::new(), "Printer jammed", at(9_000));
    fresh.reported_by = None;
    store
        .commit(Change {
            incident: Some(IncidentWrite::Insert(fresh.clone())),
            ..Change::default()
        })
        .await
        .expect("new incident");
    let seq: i64 = sqlx::query_scalar("SELECT seq FROM incidents WHERE id = $1")
        .bind(fresh.id.0)
        .fetch_one(store.pool())
        .await
        .expect("seq");
    assert!(seq > deleted_seq, "seq {seq} reuses {deleted_seq}");
    assert_eq!(search(&store, "jammed").await, vec![fresh.clone()]);
    assert_eq!(search(&store, "printer").await.len(), 2);
}

#[tokio::test]
async fn postgres_incidents_survive_the_migration() {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use std::str::FromStr;
    let Some(url) = service_url("DATABASE_URL") else {
        return;
    };
    let schema = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let incidents = old_incidents();
    let u = old_user();
    {
        let options = PgConnectOptions::from_str(&url)
            .expect("url")
            .options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("old database");
        let mut old = before(&POSTGRES_MIGRATIONS, 6);
        old.create_schema(schema.clone());
        old.dangerous_set_table_name(format!("{schema}._imas_migrations"));
        old.run(&pool).await.expect("old migrations");
        let params = (1..=27).map(|n| format!("${n}")).collect::<Vec<_>>();
        let insert = format!(
            "INSERT INTO incidents ({OLD_COLUMNS}, search) VALUES ({}, \
             array_to_tsvector($28::text[]))",
            params.join(", ")
        );
        for i in &incidents {
            sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                .bind(i.id.0)
                .bind(&i.title)
                .bind(&i.description)
                .bind(i.kind.as_str())
                .bind(i.priority.as_str())
                .bind(i.status.as_str())
                .bind(i.assigned_to.map(|u| u.0))
                .bind(i.reported_by.map(|u| u.0))
                .bind(i.created_at)
                .bind(i.updated_at)
                .bind(i.sla_target_ms)
                .bind(i.sla_deadline)
                .bind(i.response_target_ms)
                .bind(i.response_deadline)
                .bind(i.response_breached_at)
                .bind(i.at_risk_at)
                .bind(i.sla_breached)
                .bind(i.breached_at)
                .bind(i64::from(i.escalation_level))
                .bind(i.escalated_at)
                .bind(i.acknowledged_at)
                .bind(i.resolved_at)
                .bind(i.closed_at)
                .bind(i.held_ms)
                .bind(i.hold_started_at)
                .bind(i.next_due_at)
                .bind(i.version)
                .bind(incident_terms(i))
                .execute(&pool)
                .await
                .expect("old incident");
        }
        sqlx::query(OLD_USER)
            .bind(u.id.0)
            .bind(&u.name)
            .bind(&u.username)
            .bind(&u.email)
            .bind(&u.password_hash)
            .bind(u.role.as_str())
            .bind(u.created_at)
            .execute(&pool)
            .await
            .expect("old user");
        pool.close().await;
    }
    let store = PostgresStore::connect_in_schema(&url, &schema)
        .await
        .expect("migrate");
    check_migrated(&store, &incidents).await;
    check_migrated_user(&store, &u).await;
    let mut fresh = incident(UserId::new(), "Printer jammed", at(9_000));
    fresh.reported_by = None;
    store
        .commit(Change {
            incident: Some(IncidentWrite::Insert(fresh.clone())),
            ..Change::default()
        })
        .await
        .expect("an incident without a reporter");
    assert_eq!(search(&store, "jammed").await, vec![fresh]);
}
