//! [`Dialect`]: what a SQL backend supplies to the store written once over both
//! (`store`): its sqlx database, how values bind, its statements, and the few
//! operations that really differ (how a change commits, how writes run, how a
//! page is fetched, outbox completion and pruning).

use std::fmt::Debug;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use imas_core::error::Result;
use imas_core::model::{Notification, Page, PageRequest, Timestamp};
use imas_core::ports::{Change, Generations, Pruned};
use sqlx::query::Query;
use sqlx::{Database, QueryBuilder};

use crate::repeat::Repeats;
use crate::sql::{Statements, Stmt};
use crate::store::SqlStore;
use crate::table::{Decode, Positioned, RowExt, Table, Value};

/// A query of a dialect's database, with its arguments.
pub type DbQuery<'q, D> =
    Query<'q, <D as Dialect>::DB, <<D as Dialect>::DB as Database>::Arguments>;

/// A SQL backend of the store. Sealed: implemented by this crate's
/// [`SqliteDialect`](crate::SqliteDialect) and
/// [`PostgresDialect`](crate::PostgresDialect) only.
pub trait Dialect: Debug + Sized + Send + Sync + 'static {
    type DB: Database<Row: RowExt>;
    /// What a store of this dialect holds beside its read pool.
    type State: Clone + Debug + Send + Sync + 'static;
    const BACKEND: &'static str;

    /// The statements, built once.
    const SQL: &'static LazyLock<Statements>;
    fn bind(q: DbQuery<'_, Self>, v: Value) -> DbQuery<'_, Self>;
    fn push_bind(qb: &mut QueryBuilder<Self::DB>, v: Value);
    /// How a search condition is written.
    const MATCH: Match;
    /// The store's generation counters.
    fn generations(store: &SqlStore<Self>) -> &Generations;
    /// The store's repeated-trigger batcher.
    fn repeats(store: &SqlStore<Self>) -> &Repeats;
    /// Appends ` AND ...` requiring every one of `terms` among an alert's
    /// stored `terms`.
    fn push_terms_match(qb: &mut QueryBuilder<Self::DB>, terms: Vec<String>);

    /// Commits a change whole (cancel-safe: it runs to its end).
    fn commit(store: &SqlStore<Self>, change: Change) -> impl Future<Output = Result<()>> + Send;
    /// Runs one write; the number of rows it changed.
    fn write(store: &SqlStore<Self>, stmt: Stmt) -> impl Future<Output = Result<u64>> + Send;
    /// Runs one write that returns rows (`RETURNING`).
    fn write_rows<T: Decode>(
        store: &SqlStore<Self>,
        stmt: Stmt,
    ) -> impl Future<Output = Result<Vec<T>>> + Send;
    /// A page of `table`, from a query [`page_query`](Dialect::page_query)
    /// started and the caller filtered: keyset, order, limit, decode.
    fn fetch_page<T: Decode + Positioned>(
        store: &SqlStore<Self>,
        qb: QueryBuilder<Self::DB>,
        table: &'static Table<T>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<T>>> + Send;
    /// The start of a page query on `table` (`... WHERE 1 = 1`), for filters.
    fn page_query<T>(table: &'static Table<T>) -> QueryBuilder<Self::DB>;
    /// Inserts each notification unless its key exists, in one transaction;
    /// whether each was inserted, in order.
    fn insert_notifications(
        store: &SqlStore<Self>,
        ns: &[Notification],
    ) -> impl Future<Output = Result<Vec<bool>>> + Send;
    fn complete_outbox(
        store: &SqlStore<Self>,
        keys: &[String],
        now: Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;
    fn prune_delivered(
        store: &SqlStore<Self>,
        before: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Pruned>> + Send;
}

/// How a dialect matches an incident's search terms: `prefix`, then one bound
/// value (every term quoted with `quote`, joined by `and`), then `suffix`. Terms
/// are alphanumeric only, so a quoted term is one token, never query syntax.
#[derive(Debug)]
pub struct Match {
    pub prefix: &'static str,
    pub quote: char,
    pub and: &'static str,
    pub suffix: &'static str,
}

impl Match {
    pub const fn new(
        prefix: &'static str,
        quote: char,
        and: &'static str,
        suffix: &'static str,
    ) -> Self {
        Self {
            prefix,
            quote,
            and,
            suffix,
        }
    }
}

/// A claim's lease end.
pub(crate) fn lease_end(now: Timestamp, lease: Duration) -> Timestamp {
    imas_core::model::plus(now, lease)
}

/// Binds a [`Value`] with the sqlx types of a dialect, its timestamps through
/// `$ts` and its search terms through `$terms` (a macro so that it is written
/// once for databases whose bind bounds differ).
macro_rules! bind_value {
    ($target:expr, $bind:ident, $v:expr, $ts:expr, $terms:expr) => {
        match $v {
            $crate::table::Value::Id(x) => $target.$bind(x),
            $crate::table::Value::Text(x) => $target.$bind(x),
            $crate::table::Value::Int(x) => $target.$bind(x),
            $crate::table::Value::OptInt(x) => $target.$bind(x),
            $crate::table::Value::Ts(x) => $target.$bind(x.map($ts)),
            $crate::table::Value::Bool(x) => $target.$bind(x),
            $crate::table::Value::Terms(x) => $target.$bind($terms(x)),
        }
    };
}
pub(crate) use bind_value;
