//! The SQL of both dialects, built once per dialect from the table descriptions
//! (`table`) and a few [`Flavor`] settings, and the statements of a [`Change`]
//! ([`Statements::plan`]): SQL text plus neutral bound values, run as they are by
//! the SQLite writer thread or in a PostgreSQL transaction.
//!
//! Parameters are numbered `$1, $2, ...` in both dialects (SQLite takes `$1` as a
//! parameter named `$1`; both bind it to the first value), so one text serves both.

use imas_core::error::{Error, Result};
use imas_core::model::{AlertStatus, Incident, search_terms};
use imas_core::ports::{
    AlertWrite, Change, EscalationPolicyWrite, IncidentWrite, IntegrationWrite, RotationWrite,
    ScheduleWrite, ServiceWrite, UserWrite,
};
use uuid::Uuid;

use crate::error::{Refused, Taken};
use crate::intent_json;
use crate::table::{
    ALERTS, AUDIT, ESCALATION_POLICIES, INCIDENTS, INTEGRATIONS, Kind, NOTIFICATIONS, ROTATIONS,
    SCHEDULES, SERVICES, Table, USERS, Value, terms_of,
};

/// Where a dialect keeps an incident's search terms.
#[derive(Debug, Clone, Copy)]
pub enum Search {
    /// A column of `incidents` (PostgreSQL's `tsvector`), written with the row.
    Column,
    /// A table of its own keyed by the incident's `seq` (SQLite's FTS5
    /// `incident_search`), written by statements of its own.
    Table,
}

/// What differs in the SQL text of a dialect.
#[derive(Debug, Clone, Copy)]
pub struct Flavor {
    /// Appended to a claim's inner `SELECT` (`FOR UPDATE SKIP LOCKED`), or empty
    /// where a single writer makes claims exclusive.
    pub lock: &'static str,
    /// The column a claim selects incidents by (SQLite's rowid `seq`, else `id`).
    pub incident_key: &'static str,
    pub search: Search,
    /// Appended to a bound JSON text (`::jsonb`), or empty.
    pub json_cast: &'static str,
    /// Appended to a bound array of search terms (`::text[]`), or empty.
    pub terms_cast: &'static str,
}

/// Every statement with a fixed text, for one dialect.
#[derive(Debug)]
pub struct Statements {
    pub flavor: Flavor,
    pub insert_user: String,
    pub set_role: String,
    /// A user's name, email, time zone and password hash (`$1` the id).
    pub update_profile: String,
    pub username_taken: String,
    pub insert_incident: String,
    pub update_incident: String,
    pub delete_incident: String,
    pub incident_version: String,
    /// SQLite's search table: insert, update, delete (empty with a column).
    pub search_insert: String,
    pub search_update: String,
    pub search_delete: String,
    pub insert_audit: String,
    pub insert_outbox: String,
    pub get_user: String,
    pub list_users: String,
    pub user_by_username: String,
    pub users_with_role: String,
    pub get_incident: String,
    pub count_incidents: String,
    pub claim_due: String,
    pub next_due_at: String,
    pub insert_notification: String,
    pub mark_read: String,
    pub record_delivery: String,
    pub was_delivered: String,
    pub claim_outbox: String,
    pub pending_outbox: String,
    pub oldest_pending_outbox: String,
    pub insert_service: String,
    pub update_service: String,
    pub delete_service: String,
    pub service_exists: String,
    pub get_service: String,
    pub insert_integration: String,
    pub revoke_integration: String,
    pub integration_exists: String,
    pub get_integration: String,
    pub integration_by_key_hash: String,
    pub list_integrations: String,
    pub insert_alert: String,
    pub acknowledge_alert: String,
    pub resolve_alert: String,
    pub alert_exists: String,
    /// Changes no row (a status an alert never moves to).
    pub unchanged_alert: String,
    pub get_alert: String,
    pub open_alert: String,
    /// Adds `$3` events at `$4` to the open alert `($1, $2)`, returning it.
    pub repeat_trigger: String,
    pub rotations: Versioned,
    pub schedules: Versioned,
    pub escalation_policies: Versioned,
}

/// The statements of a table of whole, versioned records (rotations,
/// schedules, escalation policies): each write replaces or removes the row at
/// the version it was computed from.
#[derive(Debug)]
pub struct Versioned {
    pub insert: String,
    /// Every column from the record (`$1` its id), where `version` is the
    /// last parameter.
    pub update: String,
    /// `$1` the id, `$2` the expected version.
    pub delete: String,
    pub exists: String,
    pub get: String,
}

impl Versioned {
    fn new<T>(t: &Table<T>, flavor: &Flavor) -> Self {
        let json_as_text = !flavor.json_cast.is_empty();
        Versioned {
            insert: format!(
                "INSERT INTO {} ({}) VALUES ({})",
                t.name,
                t.list(),
                values(t, flavor.json_cast)
            ),
            update: format!(
                "UPDATE {} SET {} WHERE id = $1 AND version = ${}",
                t.name,
                set_list(t, flavor.json_cast),
                t.columns.len() + 1
            ),
            delete: format!("DELETE FROM {} WHERE id = $1 AND version = $2", t.name),
            exists: format!("SELECT 1 AS one FROM {} WHERE id = $1", t.name),
            get: format!(
                "SELECT {} FROM {} WHERE id = $1",
                t.select(json_as_text),
                t.name
            ),
        }
    }
}

/// `$from, $from+1, ..., $to`.
fn params(from: usize, to: usize) -> String {
    (from..=to)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn insert<T>(t: &Table<T>) -> String {
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        t.name,
        t.list(),
        values(t, "")
    )
}

/// `$1, $2, ...`: one parameter per column of `t`, JSON ones cast with
/// `json_cast`.
fn values<T>(t: &Table<T>, json_cast: &str) -> String {
    let mut n = 0;
    t.list_with(|c| {
        n += 1;
        match c.kind() {
            Kind::Json => format!("${n}{json_cast}"),
            _ => format!("${n}"),
        }
    })
}

/// `col = $2, ...` for every column but the first (the id, `$1`).
fn set_list<T>(t: &Table<T>, json_cast: &str) -> String {
    t.columns[1..]
        .iter()
        .enumerate()
        .map(|(k, c)| match c.kind() {
            Kind::Json => format!("{} = ${}{json_cast}", c.name, k + 2),
            _ => format!("{} = ${}", c.name, k + 2),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Statements {
    pub fn new(flavor: Flavor) -> Self {
        let n = INCIDENTS.columns.len();
        let incidents = INCIDENTS.list();
        let (search_col, search_val, search_set, version_param) = match flavor.search {
            Search::Column => (
                ", search".to_string(),
                format!(", array_to_tsvector(${}::text[])", n + 1),
                format!(", search = array_to_tsvector(${}::text[])", n + 1),
                n + 2,
            ),
            Search::Table => (String::new(), String::new(), String::new(), n + 1),
        };
        let set: String = INCIDENTS.columns[1..]
            .iter()
            .enumerate()
            .map(|(k, c)| format!("{} = ${}", c.name, k + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let (lock, key) = (flavor.lock, flavor.incident_key);
        let (search_insert, search_update, search_delete) = match flavor.search {
            Search::Column => Default::default(),
            Search::Table => (
                "INSERT INTO incident_search (rowid, terms) SELECT seq, $2 FROM incidents \
                 WHERE id = $1"
                    .to_string(),
                "UPDATE incident_search SET terms = $2 WHERE rowid = \
                 (SELECT seq FROM incidents WHERE id = $1)"
                    .to_string(),
                "DELETE FROM incident_search WHERE rowid = \
                 (SELECT seq FROM incidents WHERE id = $1 AND version = $2)"
                    .to_string(),
            ),
        };
        let users = USERS.list();
        let notifications = NOTIFICATIONS.list();
        let json_as_text = !flavor.json_cast.is_empty();
        let services = SERVICES.list();
        let integrations = INTEGRATIONS.list();
        let alerts = ALERTS.select(json_as_text);
        let na = ALERTS.columns.len();
        let ns = SERVICES.columns.len();
        Statements {
            flavor,
            insert_user: insert(&USERS),
            set_role: "UPDATE users SET role = $1 WHERE id = $2".into(),
            update_profile: "UPDATE users SET name = $2, email = $3, time_zone = $4, \
                             password_hash = $5 WHERE id = $1"
                .into(),
            username_taken: "SELECT 1 AS one FROM users WHERE username = $1".into(),
            insert_incident: format!(
                "INSERT INTO incidents ({incidents}{search_col}) VALUES ({}{search_val})",
                params(1, n)
            ),
            update_incident: format!(
                "UPDATE incidents SET {set}{search_set} WHERE id = $1 AND version = ${version_param}"
            ),
            delete_incident: "DELETE FROM incidents WHERE id = $1 AND version = $2".into(),
            incident_version: "SELECT version FROM incidents WHERE id = $1".into(),
            search_insert,
            search_update,
            search_delete,
            insert_audit: insert(&AUDIT),
            insert_outbox: "INSERT INTO outbox (key, intent, available_at) VALUES ($1, $2, $3) \
                            ON CONFLICT (key) DO NOTHING"
                .into(),
            get_user: format!("SELECT {users} FROM users WHERE id = $1"),
            list_users: format!("SELECT {users} FROM users"),
            user_by_username: format!("SELECT {users} FROM users WHERE username = $1"),
            users_with_role: format!(
                "SELECT {users} FROM users WHERE role = $1 ORDER BY created_at, id"
            ),
            get_incident: format!("SELECT {incidents} FROM incidents WHERE id = $1"),
            count_incidents: "SELECT COUNT(*) AS n FROM incidents WHERE 1 = 1".into(),
            claim_due: format!(
                "UPDATE incidents SET next_due_at = $1 WHERE {key} IN (\
                 SELECT {key} FROM incidents WHERE next_due_at IS NOT NULL AND next_due_at <= $2 \
                 ORDER BY next_due_at LIMIT $3{lock}) RETURNING {incidents}"
            ),
            next_due_at:
                "SELECT MIN(next_due_at) AS t FROM incidents WHERE next_due_at IS NOT NULL".into(),
            insert_notification: format!("{} ON CONFLICT (key) DO NOTHING", insert(&NOTIFICATIONS)),
            mark_read: format!(
                "UPDATE notifications SET read = TRUE WHERE id = $1 AND user_id = $2 \
                 RETURNING {notifications}"
            ),
            record_delivery: "INSERT INTO channel_deliveries (key, channel) VALUES ($1, $2) \
                              ON CONFLICT (key, channel) DO NOTHING"
                .into(),
            was_delivered:
                "SELECT 1 AS one FROM channel_deliveries WHERE key = $1 AND channel = $2".into(),
            claim_outbox: format!(
                "UPDATE outbox SET available_at = $1, attempts = attempts + 1 WHERE seq IN (\
                 SELECT seq FROM outbox WHERE delivered_at IS NULL AND available_at <= $2 \
                 ORDER BY available_at, seq LIMIT $3{lock}) \
                 RETURNING seq, intent, attempts, available_at"
            ),
            pending_outbox: "SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL".into(),
            // Index `outbox_pending_seq`: the first pending row written.
            oldest_pending_outbox:
                "SELECT intent FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT 1".into(),
            insert_service: insert(&SERVICES),
            update_service: format!(
                "UPDATE services SET {} WHERE id = $1 AND version = ${}",
                set_list(&SERVICES, ""),
                ns + 1
            ),
            delete_service: "DELETE FROM services WHERE id = $1 AND version = $2".into(),
            service_exists: "SELECT 1 AS one FROM services WHERE id = $1".into(),
            get_service: format!("SELECT {services} FROM services WHERE id = $1"),
            insert_integration: insert(&INTEGRATIONS),
            revoke_integration:
                "UPDATE integrations SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1".into(),
            integration_exists: "SELECT 1 AS one FROM integrations WHERE id = $1".into(),
            get_integration: format!("SELECT {integrations} FROM integrations WHERE id = $1"),
            // The unique index on key_hash: one point read per event.
            integration_by_key_hash: format!(
                "SELECT {integrations} FROM integrations WHERE key_hash = $1"
            ),
            list_integrations: format!(
                "SELECT {integrations} FROM integrations WHERE service_id = $1 \
                 AND revoked_at IS NULL ORDER BY created_at, id"
            ),
            // The row, then its summary's search terms.
            insert_alert: format!(
                "INSERT INTO alerts ({}, terms) VALUES ({}, ${}{})",
                ALERTS.list(),
                values(&ALERTS, flavor.json_cast),
                na + 1,
                flavor.terms_cast
            ),
            acknowledge_alert: "UPDATE alerts SET status = 'acknowledged' \
                                WHERE id = $1 AND status = 'triggered'"
                .into(),
            resolve_alert: "UPDATE alerts SET status = 'resolved', resolved_at = $2 \
                            WHERE id = $1 AND status <> 'resolved'"
                .into(),
            alert_exists: "SELECT 1 AS one FROM alerts WHERE id = $1".into(),
            unchanged_alert: "UPDATE alerts SET status = status WHERE id = $1 AND 1 = 0".into(),
            get_alert: format!("SELECT {alerts} FROM alerts WHERE id = $1"),
            // The unique index on open alerts.
            open_alert: format!(
                "SELECT {alerts} FROM alerts WHERE service_id = $1 AND dedup_key = $2 \
                 AND status <> 'resolved'"
            ),
            repeat_trigger: format!(
                "UPDATE alerts SET event_count = event_count + $3, last_event_at = \
                 CASE WHEN last_event_at < $4 THEN $4 ELSE last_event_at END \
                 WHERE service_id = $1 AND dedup_key = $2 AND status <> 'resolved' \
                 RETURNING {alerts}"
            ),
            rotations: Versioned::new(&ROTATIONS, &flavor),
            schedules: Versioned::new(&SCHEDULES, &flavor),
            escalation_policies: Versioned::new(&ESCALATION_POLICIES, &flavor),
        }
    }
}

/// Which row a statement of a change is about.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub entity: &'static str,
    pub id: Uuid,
}

/// What a statement of a change requires of the rows it touched.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    Anything,
    /// A user row (`SetRole` of an unknown user is NotFound).
    User,
    /// A new user: a unique violation means its username or email is taken
    /// (SQLite's codes do not say which; its writer looks it up).
    NewUser,
    /// A versioned row: none means NotFound or a stale version.
    Versioned(Target),
    /// A row that must exist; none changed while it exists is fine (the write
    /// was already done: a second revoke, a resolve of a resolved alert).
    Exists(Target),
}

/// After a write that matched no row: whether its target exists decides.
#[derive(Debug)]
pub struct Lookup {
    /// The statement whose row tells whether the target exists.
    pub stmt: Stmt,
    target: Target,
    stale_if_found: bool,
}

impl Lookup {
    /// What it means that the target exists (`found`) or not.
    pub fn outcome(&self, found: bool) -> Result<()> {
        match (found, self.stale_if_found) {
            (false, _) => Err(Error::NotFound {
                entity: self.target.entity,
            }),
            (true, true) => Err(Error::conflict(format!(
                "{} {} was modified concurrently; reload and retry",
                self.target.entity, self.target.id
            ))),
            (true, false) => Ok(()),
        }
    }
}

/// One statement of a change.
#[derive(Debug)]
pub struct Stmt {
    pub sql: &'static str,
    pub args: Vec<Value>,
    pub expect: Expect,
    /// What a violation of a UNIQUE constraint other than the primary key
    /// means (SQLite's codes do not name the constraint; PostgreSQL's names
    /// say it themselves).
    pub taken: Taken,
    /// What a violation of a foreign key means.
    pub refused: Refused,
}

impl Stmt {
    pub fn new(sql: &'static str, args: Vec<Value>) -> Self {
        Self {
            sql,
            args,
            expect: Expect::Anything,
            taken: Taken::Record,
            refused: Refused::Unexpected,
        }
    }

    fn refusing(mut self, refused: Refused) -> Self {
        self.refused = refused;
        self
    }

    fn expecting(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }

    fn taking(mut self, taken: Taken) -> Self {
        self.taken = taken;
        self
    }
}

impl Statements {
    /// What it means that a statement changed `rows` rows: fine (`Ok(None)`),
    /// an error, or a [`Lookup`] to run (its outcome then says).
    pub fn check(&'static self, expect: Expect, rows: u64) -> Result<Option<Lookup>> {
        let (target, stale_if_found) = match expect {
            _ if rows > 0 => return Ok(None),
            Expect::Anything | Expect::NewUser => return Ok(None),
            Expect::User => return Err(Error::NotFound { entity: "user" }),
            Expect::Versioned(t) => (t, true),
            Expect::Exists(t) => (t, false),
        };
        let sql = match target.entity {
            "incident" => &self.incident_version,
            "service" => &self.service_exists,
            "integration" => &self.integration_exists,
            "rotation" => &self.rotations.exists,
            "schedule" => &self.schedules.exists,
            "escalation policy" => &self.escalation_policies.exists,
            _ => &self.alert_exists,
        };
        Ok(Some(Lookup {
            stmt: Stmt::new(sql, vec![Value::Id(Some(target.id))]),
            target,
            stale_if_found,
        }))
    }

    /// The statements that commit `change`, in order.
    pub fn plan(&'static self, change: &Change) -> Result<Vec<Stmt>> {
        let mut out = Vec::with_capacity(
            3 + change.integrations.len()
                + change.alerts.len()
                + change.audit.len()
                + change.outbox.len(),
        );
        match &change.user {
            Some(UserWrite::Insert(u)) => {
                out.push(Stmt::new(&self.insert_user, USERS.values(u)).expecting(Expect::NewUser))
            }
            Some(UserWrite::SetRole { id, role }) => out.push(
                Stmt::new(
                    &self.set_role,
                    vec![Value::text(role.as_str()), Value::Id(Some(id.0))],
                )
                .expecting(Expect::User),
            ),
            Some(UserWrite::UpdateProfile(u)) => out.push(
                Stmt::new(
                    &self.update_profile,
                    vec![
                        Value::Id(Some(u.id.0)),
                        Value::text(u.name.as_str()),
                        Value::text(u.email.as_str()),
                        Value::text(u.time_zone.name()),
                        Value::text(u.password_hash.as_str()),
                    ],
                )
                .expecting(Expect::User)
                // The id is the primary key and the username is not
                // written: only the email can be taken.
                .taking(Taken::Email),
            ),
            None => {}
        }
        match &change.incident {
            Some(IncidentWrite::Insert(i)) => self.insert_incident(&mut out, i),
            Some(IncidentWrite::Update {
                incident,
                expected_version,
            }) => {
                let mut args = INCIDENTS.values(incident);
                let terms = Value::Terms(terms_of(incident));
                let version = Value::Int(*expected_version);
                let expect = Expect::Versioned(Target {
                    entity: "incident",
                    id: incident.id.0,
                });
                match self.flavor.search {
                    Search::Column => {
                        args.extend([terms, version]);
                        out.push(
                            Stmt::new(&self.update_incident, args)
                                .expecting(expect)
                                .taking(Taken::OpenGroup),
                        );
                    }
                    Search::Table => {
                        args.push(version);
                        out.push(
                            Stmt::new(&self.update_incident, args)
                                .expecting(expect)
                                .taking(Taken::OpenGroup),
                        );
                        let key = vec![Value::Id(Some(incident.id.0)), terms];
                        out.push(Stmt::new(&self.search_update, key));
                    }
                }
            }
            Some(IncidentWrite::Delete {
                id,
                expected_version,
            }) => {
                let args = vec![Value::Id(Some(id.0)), Value::Int(*expected_version)];
                if let Search::Table = self.flavor.search {
                    out.push(Stmt::new(&self.search_delete, args.clone()));
                }
                let target = Target {
                    entity: "incident",
                    id: id.0,
                };
                out.push(
                    Stmt::new(&self.delete_incident, args).expecting(Expect::Versioned(target)),
                );
            }
            None => {}
        }
        self.plan_on_call(&mut out, change);
        let policy_delete = match &change.escalation_policy {
            Some(EscalationPolicyWrite::Delete {
                id,
                expected_version,
            }) => Some((id.0, *expected_version)),
            _ => None,
        };
        self.plan_alerting(&mut out, change);
        // After the service write, which may be the one that stops using it.
        if let Some((id, version)) = policy_delete {
            out.push(
                self.escalation_policies
                    .delete("escalation policy", id, version)
                    .refusing(Refused::PolicyInUse(id)),
            );
        }
        for e in &change.audit {
            out.push(Stmt::new(&self.insert_audit, AUDIT.values(e)));
        }
        for intent in &change.outbox {
            out.push(Stmt::new(
                &self.insert_outbox,
                vec![
                    Value::text(intent.key.as_str()),
                    Value::text(intent_json(intent)?),
                    Value::Ts(Some(intent.created_at)),
                ],
            ));
        }
        Ok(out)
    }

    /// The statements of a change's rotation, schedule and escalation-policy
    /// writes but a policy's delete (that one comes after the service write):
    /// before the service write, which may name the policy inserted here.
    fn plan_on_call(&'static self, out: &mut Vec<Stmt>, change: &Change) {
        match &change.rotation {
            Some(RotationWrite::Insert(r)) => {
                out.push(Stmt::new(&self.rotations.insert, ROTATIONS.values(r)))
            }
            Some(RotationWrite::Update {
                rotation,
                expected_version,
            }) => out.push(self.rotations.update(
                "rotation",
                &ROTATIONS,
                rotation,
                rotation.id.0,
                *expected_version,
            )),
            Some(RotationWrite::Delete {
                id,
                expected_version,
            }) => out.push(self.rotations.delete("rotation", id.0, *expected_version)),
            None => {}
        }
        match &change.schedule {
            Some(ScheduleWrite::Insert(s)) => {
                out.push(Stmt::new(&self.schedules.insert, SCHEDULES.values(s)))
            }
            Some(ScheduleWrite::Update {
                schedule,
                expected_version,
            }) => out.push(self.schedules.update(
                "schedule",
                &SCHEDULES,
                schedule,
                schedule.id.0,
                *expected_version,
            )),
            Some(ScheduleWrite::Delete {
                id,
                expected_version,
            }) => out.push(self.schedules.delete("schedule", id.0, *expected_version)),
            None => {}
        }
        match &change.escalation_policy {
            Some(EscalationPolicyWrite::Insert(p)) => out.push(Stmt::new(
                &self.escalation_policies.insert,
                ESCALATION_POLICIES.values(p),
            )),
            Some(EscalationPolicyWrite::Update {
                escalation_policy,
                expected_version,
            }) => out.push(self.escalation_policies.update(
                "escalation policy",
                &ESCALATION_POLICIES,
                escalation_policy,
                escalation_policy.id.0,
                *expected_version,
            )),
            Some(EscalationPolicyWrite::Delete { .. }) | None => {}
        }
    }

    /// The statements of a change's service, integration and alert writes (in
    /// that order, after the incident write).
    fn plan_alerting(&'static self, out: &mut Vec<Stmt>, change: &Change) {
        match &change.service {
            Some(ServiceWrite::Insert(s)) => out.push(
                Stmt::new(&self.insert_service, SERVICES.values(s))
                    .taking(Taken::ServiceName)
                    .refusing(no_such_policy(s)),
            ),
            Some(ServiceWrite::Update {
                service,
                expected_version,
            }) => {
                let mut args = SERVICES.values(service);
                args.push(Value::Int(*expected_version));
                let target = Target {
                    entity: "service",
                    id: service.id.0,
                };
                out.push(
                    Stmt::new(&self.update_service, args)
                        .expecting(Expect::Versioned(target))
                        .taking(Taken::ServiceName)
                        .refusing(no_such_policy(service)),
                );
            }
            Some(ServiceWrite::Delete {
                id,
                expected_version,
            }) => {
                let args = vec![Value::Id(Some(id.0)), Value::Int(*expected_version)];
                let target = Target {
                    entity: "service",
                    id: id.0,
                };
                out.push(
                    Stmt::new(&self.delete_service, args).expecting(Expect::Versioned(target)),
                );
            }
            None => {}
        }
        for w in &change.integrations {
            out.push(match w {
                IntegrationWrite::Insert(i) => {
                    Stmt::new(&self.insert_integration, INTEGRATIONS.values(i))
                        .taking(Taken::IntegrationKey)
                }
                IntegrationWrite::Revoke { id, at } => Stmt::new(
                    &self.revoke_integration,
                    vec![Value::Id(Some(id.0)), Value::Ts(Some(*at))],
                )
                .expecting(Expect::Exists(Target {
                    entity: "integration",
                    id: id.0,
                })),
            });
        }
        // Status changes next to each other run in id order, the order the
        // repeated-trigger batch locks alerts in (postgres.rs), so that the
        // two never wait on each other crosswise (a deadlock); inserts keep
        // their place.
        let mut alerts: Vec<&AlertWrite> = Vec::with_capacity(change.alerts.len());
        for run in change
            .alerts
            .chunk_by(|a, b| is_status_change(a) && is_status_change(b))
        {
            let start = alerts.len();
            alerts.extend(run);
            alerts[start..].sort_by_key(|w| match w {
                AlertWrite::SetStatus { id, .. } => Some(id.0),
                AlertWrite::Insert(_) => None,
            });
        }
        for w in alerts {
            out.push(match w {
                AlertWrite::Insert(a) => {
                    let mut args = ALERTS.values(a);
                    args.push(Value::Terms(search_terms(&a.summary)));
                    Stmt::new(&self.insert_alert, args).taking(Taken::OpenAlert)
                }
                AlertWrite::SetStatus { id, status, at } => {
                    let target = Expect::Exists(Target {
                        entity: "alert",
                        id: id.0,
                    });
                    let key = Value::Id(Some(id.0));
                    match status {
                        AlertStatus::Resolved => {
                            Stmt::new(&self.resolve_alert, vec![key, Value::Ts(Some(*at))])
                        }
                        // Triggered is where alerts start, never where they
                        // move to: nothing to write (but it must exist).
                        AlertStatus::Acknowledged | AlertStatus::Triggered => {
                            let sql = if *status == AlertStatus::Acknowledged {
                                &self.acknowledge_alert
                            } else {
                                &self.unchanged_alert
                            };
                            Stmt::new(sql, vec![key])
                        }
                    }
                    .expecting(target)
                }
            });
        }
    }

    /// The statements that insert one incident with its search terms.
    pub fn insert_incident(&'static self, out: &mut Vec<Stmt>, i: &Incident) {
        let mut args = INCIDENTS.values(i);
        match self.flavor.search {
            Search::Column => {
                args.push(Value::Terms(terms_of(i)));
                out.push(Stmt::new(&self.insert_incident, args).taking(Taken::OpenGroup));
            }
            Search::Table => {
                out.push(Stmt::new(&self.insert_incident, args).taking(Taken::OpenGroup));
                out.push(Stmt::new(
                    &self.search_insert,
                    vec![Value::Id(Some(i.id.0)), Value::Terms(terms_of(i))],
                ));
            }
        }
    }
}

impl Versioned {
    /// The update of `record` (id `id`) at `expected_version`.
    fn update<T>(
        &'static self,
        entity: &'static str,
        table: &Table<T>,
        record: &T,
        id: Uuid,
        expected_version: i64,
    ) -> Stmt {
        let mut args = table.values(record);
        args.push(Value::Int(expected_version));
        Stmt::new(&self.update, args).expecting(Expect::Versioned(Target { entity, id }))
    }

    /// The delete of `id` at `expected_version`.
    fn delete(&'static self, entity: &'static str, id: Uuid, expected_version: i64) -> Stmt {
        Stmt::new(
            &self.delete,
            vec![Value::Id(Some(id)), Value::Int(expected_version)],
        )
        .expecting(Expect::Versioned(Target { entity, id }))
    }
}

/// What a foreign-key violation of a service write means: its policy is gone.
fn no_such_policy(s: &imas_core::model::Service) -> Refused {
    match s.escalation_policy_id {
        Some(p) => Refused::NoSuchPolicy(p.0),
        None => Refused::Unexpected,
    }
}

/// Whether an alert write is a status change (not an insert).
fn is_status_change(w: &AlertWrite) -> bool {
    matches!(w, AlertWrite::SetStatus { .. })
}
