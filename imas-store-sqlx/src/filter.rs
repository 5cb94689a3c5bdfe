//! The `WHERE` clauses of the lists, written once over the dialects: incident
//! and audit filters (reference semantics: `IncidentFilter::matches`), the
//! keyset condition and the page's order and limit.

use imas_core::model::{
    AlertFilter, AuditFilter, Cursor, IncidentFilter, Page, PageRequest, search_terms,
};
use sqlx::QueryBuilder;

use crate::dialect::Dialect;
use crate::table::{Positioned, Value};

fn bind_text<D: Dialect>(qb: &mut QueryBuilder<D::DB>, s: String) {
    D::push_bind(qb, Value::text(s));
}

fn bind_ts<D: Dialect>(qb: &mut QueryBuilder<D::DB>, t: imas_core::model::Timestamp) {
    D::push_bind(qb, Value::Ts(Some(t)));
}

fn bind_id<D: Dialect>(qb: &mut QueryBuilder<D::DB>, id: uuid::Uuid) {
    D::push_bind(qb, Value::Id(Some(id)));
}

/// Appends a condition that every term appears in the incident's search terms.
fn push_search<D: Dialect>(qb: &mut QueryBuilder<D::DB>, terms: &[String]) {
    let m = &D::MATCH;
    let query: Vec<String> = terms
        .iter()
        .map(|t| format!("{q}{t}{q}", q = m.quote))
        .collect();
    qb.push(m.prefix);
    bind_text::<D>(qb, query.join(m.and));
    qb.push(m.suffix);
}

fn push_in<D: Dialect>(qb: &mut QueryBuilder<D::DB>, col: &str, values: &[&'static str]) {
    qb.push(format_args!(" AND {col} IN ("));
    for (n, v) in values.iter().enumerate() {
        if n > 0 {
            qb.push(", ");
        }
        bind_text::<D>(qb, (*v).to_string());
    }
    qb.push(")");
}

/// Appends ` AND ...` for every set field of an incident filter (reference
/// semantics: `IncidentFilter::matches`).
pub(crate) fn push_incident_filter<D: Dialect>(qb: &mut QueryBuilder<D::DB>, f: &IncidentFilter) {
    if !f.status.is_empty() {
        let v: Vec<&'static str> = f.status.iter().map(|s| s.as_str()).collect();
        push_in::<D>(qb, "status", &v);
    }
    if !f.priority.is_empty() {
        let v: Vec<&'static str> = f.priority.iter().map(|p| p.as_str()).collect();
        push_in::<D>(qb, "priority", &v);
    }
    if let Some(a) = f.assigned_to {
        qb.push(" AND assigned_to = ");
        bind_id::<D>(qb, a.0);
    }
    if let Some(r) = f.reported_by {
        qb.push(" AND reported_by = ");
        bind_id::<D>(qb, r.0);
    }
    if let Some(s) = f.service_id {
        qb.push(" AND service_id = ");
        bind_id::<D>(qb, s.0);
    }
    if let Some(g) = &f.group_key {
        qb.push(" AND group_key = ");
        bind_text::<D>(qb, g.clone());
        // Looking for a group's open incident: say so in the words of the
        // partial index on open groups (`incidents_open_group`), so that the
        // planner uses it instead of walking the service's incidents (a
        // bound status list does not prove the index's predicate).
        if !f.status.is_empty() && f.status.iter().all(|s| !s.is_done()) {
            qb.push(" AND group_key IS NOT NULL AND status NOT IN ('resolved', 'closed')");
        }
    }
    if let Some(t) = f.created_from {
        qb.push(" AND created_at >= ");
        bind_ts::<D>(qb, t);
    }
    if let Some(t) = f.created_to {
        qb.push(" AND created_at <= ");
        bind_ts::<D>(qb, t);
    }
    match f.escalated {
        Some(true) => {
            qb.push(" AND escalation_level > 0");
        }
        Some(false) => {
            qb.push(" AND escalation_level = 0");
        }
        None => {}
    }
    match f.sla_breached {
        Some(true) => {
            qb.push(" AND sla_breached = TRUE");
        }
        Some(false) => {
            qb.push(" AND sla_breached = FALSE");
        }
        None => {}
    }
    if let Some(now) = f.violated_at {
        qb.push(
            " AND status NOT IN ('resolved', 'closed') AND (sla_breached = TRUE OR (status <> 'on-hold' AND sla_deadline <= ",
        );
        bind_ts::<D>(qb, now);
        qb.push("))");
    }
    if let Some(q) = &f.q {
        let terms = search_terms(q);
        if !terms.is_empty() {
            push_search::<D>(qb, &terms);
        }
    }
}

/// Appends ` AND ...` for every set field of an alert filter (reference
/// semantics: `AlertFilter::matches`). The query's terms must all be among the
/// summary's terms, stored with the alert (`alerts.terms`).
pub(crate) fn push_alert_filter<D: Dialect>(qb: &mut QueryBuilder<D::DB>, f: &AlertFilter) {
    if let Some(s) = f.service_id {
        qb.push(" AND service_id = ");
        bind_id::<D>(qb, s.0);
    }
    if let Some(i) = f.incident_id {
        qb.push(" AND incident_id = ");
        bind_id::<D>(qb, i.0);
    }
    if let Some(s) = f.status {
        qb.push(" AND status = ");
        bind_text::<D>(qb, s.as_str().to_string());
    }
    if let Some(q) = &f.q {
        let terms = search_terms(q);
        if !terms.is_empty() {
            D::push_terms_match(qb, terms);
        }
    }
}

/// Appends the keyset condition for newest-first pages ordered by `order`.
pub(crate) fn push_keyset<D: Dialect>(
    qb: &mut QueryBuilder<D::DB>,
    order: &str,
    cursor: Option<Cursor>,
) {
    if let Some(c) = cursor {
        qb.push(format_args!(" AND ({order}, id) < ("));
        bind_ts::<D>(qb, c.created_at);
        qb.push(", ");
        bind_id::<D>(qb, c.id);
        qb.push(")");
    }
}

/// Appends ` AND ...` for every set field of an audit filter.
pub(crate) fn push_audit_filter<D: Dialect>(qb: &mut QueryBuilder<D::DB>, f: &AuditFilter) {
    if let Some(a) = f.action {
        qb.push(" AND action = ");
        bind_text::<D>(qb, a.as_str().to_string());
    }
    if let Some(a) = f.actor {
        qb.push(" AND actor = ");
        bind_text::<D>(qb, a.to_string());
    }
    if let Some(t) = &f.target {
        qb.push(" AND target = ");
        bind_text::<D>(qb, t.clone());
    }
    if let Some(t) = f.from {
        qb.push(" AND created_at >= ");
        bind_ts::<D>(qb, t);
    }
    if let Some(t) = f.to {
        qb.push(" AND created_at <= ");
        bind_ts::<D>(qb, t);
    }
}

/// Appends the keyset condition, the newest-first order and `LIMIT limit + 1`
/// (the extra row only tells whether a next page exists).
pub(crate) fn push_page<D: Dialect>(qb: &mut QueryBuilder<D::DB>, order: &str, page: PageRequest) {
    push_keyset::<D>(qb, order, page.cursor);
    qb.push(format_args!(" ORDER BY {order} DESC, id DESC LIMIT "));
    D::push_bind(qb, Value::Int(i64::from(page.limit) + 1));
}

/// Splits the `limit + 1` rows fetched after [`push_page`] into a page.
pub(crate) fn into_page<T: Positioned>(mut items: Vec<T>, limit: u32) -> Page<T> {
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(Positioned::position)
    } else {
        None
    };
    Page { items, next }
}
