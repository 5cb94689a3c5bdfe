//! The SQL of both dialects, built once per dialect from the table descriptions
//! (`table`) and a few [`Flavor`] settings, and the statements of a [`Change`]
//! ([`Statements::plan`]): SQL text plus neutral bound values, run as they are by
//! the SQLite writer thread or in a PostgreSQL transaction.
//!
//! Parameters are numbered `$1, $2, ...` in both dialects (SQLite takes `$1` as a
//! parameter named `$1`; both bind it to the first value), so one text serves both.

use imas_core::error::{Error, Result};
use imas_core::model::{Incident, IncidentId};
use imas_core::ports::{Change, IncidentWrite, UserWrite};

use crate::intent_json;
use crate::table::{AUDIT, INCIDENTS, NOTIFICATIONS, Table, USERS, Value, terms_of};

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
}

/// Every statement with a fixed text, for one dialect.
#[derive(Debug)]
pub struct Statements {
    pub flavor: Flavor,
    pub insert_user: String,
    pub set_role: String,
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
        params(1, t.columns.len())
    )
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
        Statements {
            flavor,
            insert_user: insert(&USERS),
            set_role: "UPDATE users SET role = $1 WHERE id = $2".into(),
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
        }
    }
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
    /// A versioned incident row: none means NotFound or a stale version.
    Incident(IncidentId),
}

impl Expect {
    /// What it means that a statement changed `rows` rows: fine (`Ok(None)`),
    /// an error, or `Ok(Some(id))`: look whether incident `id` exists
    /// ([`missing_or_stale`] then says which error it is).
    pub fn check(self, rows: u64) -> Result<Option<IncidentId>> {
        match self {
            _ if rows > 0 => Ok(None),
            Expect::Anything | Expect::NewUser => Ok(None),
            Expect::User => Err(Error::NotFound { entity: "user" }),
            Expect::Incident(id) => Ok(Some(id)),
        }
    }
}

/// One statement of a change.
#[derive(Debug)]
pub struct Stmt {
    pub sql: &'static str,
    pub args: Vec<Value>,
    pub expect: Expect,
}

impl Stmt {
    pub fn new(sql: &'static str, args: Vec<Value>) -> Self {
        Self {
            sql,
            args,
            expect: Expect::Anything,
        }
    }

    fn expecting(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }
}

/// After a versioned write matched no row: NotFound, or a stale version if the
/// incident exists.
pub fn missing_or_stale(id: IncidentId, exists: bool) -> Error {
    if exists {
        Error::conflict(format!(
            "incident {id} was modified concurrently; reload and retry"
        ))
    } else {
        Error::NotFound { entity: "incident" }
    }
}

impl Statements {
    /// The statement whose row tells whether incident `id` exists.
    pub fn incident_exists(&'static self, id: IncidentId) -> Stmt {
        Stmt::new(&self.incident_version, vec![Value::Id(Some(id.0))])
    }

    /// The statements that commit `change`, in order.
    pub fn plan(&'static self, change: &Change) -> Result<Vec<Stmt>> {
        let mut out = Vec::with_capacity(2 + change.audit.len() + change.outbox.len());
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
                let expect = Expect::Incident(incident.id);
                match self.flavor.search {
                    Search::Column => {
                        args.extend([terms, version]);
                        out.push(Stmt::new(&self.update_incident, args).expecting(expect));
                    }
                    Search::Table => {
                        args.push(version);
                        out.push(Stmt::new(&self.update_incident, args).expecting(expect));
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
                out.push(Stmt::new(&self.delete_incident, args).expecting(Expect::Incident(*id)));
            }
            None => {}
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

    /// The statements that insert one incident with its search terms.
    pub fn insert_incident(&'static self, out: &mut Vec<Stmt>, i: &Incident) {
        let mut args = INCIDENTS.values(i);
        match self.flavor.search {
            Search::Column => {
                args.push(Value::Terms(terms_of(i)));
                out.push(Stmt::new(&self.insert_incident, args));
            }
            Search::Table => {
                out.push(Stmt::new(&self.insert_incident, args));
                out.push(Stmt::new(
                    &self.search_insert,
                    vec![Value::Id(Some(i.id.0)), Value::Terms(terms_of(i))],
                ));
            }
        }
    }
}
