//! Reads: filters as queries, the keyset condition of newest-first pages, the
//! search terms' `$all`, and the conditional claims of due incidents and outbox
//! rows (a document is claimed only if its due time is still the one read).

use futures::TryStreamExt;
use imas_core::error::Result;
use imas_core::model::{
    AlertFilter, AuditFilter, Cursor, IncidentFilter, Page, PageRequest, Status, Timestamp,
    search_terms,
};
use mongodb::Collection;
use mongodb::bson::{Document, doc};
use mongodb::options::ReturnDocument;

use crate::MongoStore;
use crate::codec::date;
use crate::error::err;

/// Adds `from <= created_at <= to` for the bounds given.
pub(crate) fn created_between(q: &mut Document, from: Option<Timestamp>, to: Option<Timestamp>) {
    let mut range = Document::new();
    if let Some(t) = from {
        range.insert("$gte", date(t));
    }
    if let Some(t) = to {
        range.insert("$lte", date(t));
    }
    if !range.is_empty() {
        q.insert("created_at", range);
    }
}

/// The incident filter as a query.
pub(crate) fn incident_query(f: &IncidentFilter) -> Document {
    let mut q = Document::new();
    if !f.status.is_empty() {
        let s: Vec<&str> = f.status.iter().map(|s| s.as_str()).collect();
        q.insert("status", doc! { "$in": s });
    }
    if !f.priority.is_empty() {
        let p: Vec<&str> = f.priority.iter().map(|p| p.as_str()).collect();
        q.insert("priority", doc! { "$in": p });
    }
    if let Some(a) = f.assigned_to {
        q.insert("assigned_to", a.to_string());
    }
    if let Some(r) = f.reported_by {
        q.insert("reported_by", r.to_string());
    }
    if let Some(s) = f.service_id {
        q.insert("service_id", s.to_string());
    }
    if let Some(g) = &f.group_key {
        q.insert("group_key", g.clone());
        // A group's open incident: the condition of the partial index on
        // open groups (`incidents_open_group`), so that it can serve.
        if !f.status.is_empty() && f.status.iter().all(|s| !s.is_done()) {
            q.insert("group_open", true);
        }
    }
    created_between(&mut q, f.created_from, f.created_to);
    match f.escalated {
        Some(true) => {
            q.insert("escalation_level", doc! { "$gt": 0_i64 });
        }
        Some(false) => {
            q.insert("escalation_level", 0_i64);
        }
        None => {}
    }
    if let Some(b) = f.sla_breached {
        q.insert("sla_breached", b);
    }
    let mut and = Vec::new();
    if let Some(now) = f.violated_at {
        q.insert("done", false);
        and.push(doc! { "$or": [
            { "sla_breached": true },
            { "status": { "$ne": Status::OnHold.as_str() }, "sla_deadline": { "$lte": date(now) } },
        ] });
    }
    if let Some(text) = &f.q {
        let terms = search_terms(text);
        if !terms.is_empty() {
            q.insert("search", doc! { "$all": terms });
        }
    }
    if !and.is_empty() {
        q.insert("$and", and);
    }
    q
}

/// The alert filter as a query (reserved alerts of unfinished changes are not
/// there for readers).
pub(crate) fn alert_query(f: &AlertFilter) -> Document {
    let mut q = visible(Document::new());
    if let Some(s) = f.service_id {
        q.insert("service_id", s.to_string());
    }
    if let Some(i) = f.incident_id {
        q.insert("incident_id", i.to_string());
    }
    if let Some(s) = f.status {
        q.insert("status", s.as_str());
    }
    if let Some(text) = &f.q {
        let terms = search_terms(text);
        if !terms.is_empty() {
            q.insert("search", doc! { "$all": terms });
        }
    }
    q
}

/// Services, integrations and alerts inserted by a single-document change that
/// has not reached its carrier write yet (`_cid`) are not there for readers.
pub(crate) fn visible(mut q: Document) -> Document {
    q.insert("_cid", doc! { "$exists": false });
    q
}

pub(crate) fn audit_query(f: &AuditFilter) -> Document {
    let mut q = Document::new();
    if let Some(a) = f.action {
        q.insert("action", a.as_str());
    }
    if let Some(a) = f.actor {
        q.insert("actor", a.to_string());
    }
    if let Some(t) = &f.target {
        q.insert("target", t.clone());
    }
    created_between(&mut q, f.from, f.to);
    q
}

/// Adds the keyset condition: strictly after `cursor` in newest-first order of
/// `(field, _id)`.
pub(crate) fn after(mut q: Document, field: &str, cursor: Option<Cursor>) -> Document {
    if let Some(c) = cursor {
        let keyset = doc! { "$or": [
            { field: { "$lt": date(c.created_at) } },
            { field: date(c.created_at), "_id": { "$lt": c.id.to_string() } },
        ] };
        q = if q.is_empty() {
            keyset
        } else {
            doc! { "$and": [q, keyset] }
        };
    }
    q
}

/// Incidents being deleted (single-document mode) are not there for readers.
pub(crate) fn live(mut q: Document) -> Document {
    q.insert("_deleting", doc! { "$exists": false });
    q
}

impl MongoStore {
    /// One page, newest first by `(created_at, _id)`, of `coll` matching `q`.
    pub(crate) async fn page<T>(
        &self,
        coll: Collection<Document>,
        q: Document,
        page: PageRequest,
        decode: impl Fn(&Document) -> Result<T>,
        position: impl Fn(&T) -> Cursor,
    ) -> Result<Page<T>> {
        self.page_on(coll, "created_at", q, page, decode, position)
            .await
    }

    /// One page, newest first by `(field, _id)` (`field` an instant), of `coll`
    /// matching `q`.
    pub(crate) async fn page_on<T>(
        &self,
        coll: Collection<Document>,
        field: &str,
        q: Document,
        page: PageRequest,
        decode: impl Fn(&Document) -> Result<T>,
        position: impl Fn(&T) -> Cursor,
    ) -> Result<Page<T>> {
        page.validate()?;
        let docs: Vec<Document> = coll
            .find(after(q, field, page.cursor))
            .sort(doc! { field: -1, "_id": -1 })
            .limit(i64::from(page.limit) + 1)
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        let mut items = docs.iter().map(decode).collect::<Result<Vec<_>>>()?;
        let more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        let next = if more {
            items.last().map(&position)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Claims up to `limit` documents of `coll` matching `query`, in `order`:
    /// each is updated with `update` only if it still matches and its `field` (a
    /// due time) is still the value read, so two nodes never take the same one. Returns the claimed
    /// documents as updated.
    pub(crate) async fn claim(
        &self,
        coll: Collection<Document>,
        query: Document,
        order: Document,
        field: &str,
        update: Document,
        limit: u32,
    ) -> Result<Vec<Document>> {
        let candidates: Vec<Document> = coll
            .find(query.clone())
            .sort(order)
            .limit(i64::from(limit))
            .projection(doc! { "_id": 1, field: 1 })
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        let mut out = Vec::with_capacity(candidates.len());
        for c in candidates {
            let (Some(id), Some(read)) = (c.get("_id"), c.get(field)) else {
                continue;
            };
            // Still matching the query, with the very value read.
            let mut unchanged = query.clone();
            unchanged.insert("_id", id.clone());
            unchanged.insert(field, read.clone());
            let claimed = coll
                .find_one_and_update(unchanged, update.clone())
                .return_document(ReturnDocument::After)
                .await
                .map_err(err)?;
            out.extend(claimed);
        }
        Ok(out)
    }
}
