//! Recovery of single-document changes interrupted between their carrier write
//! and the move-out of their side effects: pending entries still on their
//! carrier, journal documents, incidents and services marked for deletion, and
//! reservations of changes that never reached their carrier write. Nothing
//! committed is lost; running it twice changes nothing.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use imas_core::error::Result;
use mongodb::bson::{Bson, Document, doc};
use uuid::Uuid;

use super::single_document::{CARRIERS_IN, MARKED_IN, RESERVED_IN};
use crate::MongoStore;
use crate::error::err;

/// How old a reservation (an insert hidden by `_cid`, see
/// [`single_document`](super::single_document)) of a change with neither a
/// carrier nor a journal document must be before recovery takes the change for
/// abandoned and removes it. A change normally writes its carrier
/// milliseconds after its reservations; one that stalls longer than this
/// writes a removed reservation again when it is applied.
pub(crate) const RESERVATION_GRACE: Duration = Duration::from_secs(60);

impl MongoStore {
    /// Finishes changes that were interrupted between their entity write and the
    /// move-out of their audit entries and outbox rows (single-document mode; in
    /// transaction mode there are none). Runs at connect time and before every
    /// outbox claim; safe to run any time, from any node. Its queries are range
    /// conditions on indexed fields (`_pending.cid`, `_deleting`), so an idle
    /// recovery costs a few index lookups, not a scan.
    pub async fn recover(&self) -> Result<()> {
        for name in CARRIERS_IN {
            let coll = self.db.collection::<Document>(name);
            let carriers: Vec<Document> = coll
                .find(doc! { "_pending.cid": { "$gt": "" } })
                .projection(doc! { "_id": 1, "_pending": 1, "_deleting": 1 })
                .await
                .map_err(err)?
                .try_collect()
                .await
                .map_err(err)?;
            for c in carriers {
                let Some(id) = c.get("_id").cloned() else {
                    continue;
                };
                let entries = c
                    .get_array("_pending")
                    .map(|a| a.to_vec())
                    .unwrap_or_default();
                for e in entries.iter().filter_map(Bson::as_document) {
                    self.move_out(e).await?;
                    let cid = e.get("cid").cloned().unwrap_or(Bson::Null);
                    coll.update_one(
                        doc! { "_id": id.clone() },
                        doc! { "$pull": { "_pending": { "cid": cid } } },
                    )
                    .await
                    .map_err(err)?;
                }
            }
        }
        let journal: Vec<Document> = self
            .pending_changes()
            .find(doc! {})
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        for j in journal {
            self.move_out(&j).await?;
            if let Some(id) = j.get("_id") {
                self.pending_changes()
                    .delete_one(doc! { "_id": id.clone() })
                    .await
                    .map_err(err)?;
            }
        }
        // Incidents, services, rotations, schedules and policies whose deletion
        // was marked and whose entries are moved out.
        for name in MARKED_IN {
            self.db
                .collection::<Document>(name)
                .delete_many(
                    doc! { "_deleting": { "$gt": "" }, "_pending.0": { "$exists": false } },
                )
                .await
                .map_err(err)?;
        }
        self.remove_abandoned_reservations(SystemTime::now()).await
    }

    /// Removes the reservations of changes that have no carrier and no journal
    /// document (they never committed) and began more than
    /// [`RESERVATION_GRACE`] before `now`.
    pub(crate) async fn remove_abandoned_reservations(&self, now: SystemTime) -> Result<()> {
        for name in RESERVED_IN {
            let coll = self.db.collection::<Document>(name);
            let held: Vec<Document> = coll
                .find(doc! { "_cid": { "$gt": "" } })
                .projection(doc! { "_cid": 1 })
                .await
                .map_err(err)?
                .try_collect()
                .await
                .map_err(err)?;
            let cids: BTreeSet<String> = held
                .iter()
                .filter_map(|d| d.get_str("_cid").ok().map(str::to_string))
                .collect();
            for cid in cids {
                if !abandoned_long_ago(&cid, now) || self.change_committed(&cid).await? {
                    continue;
                }
                coll.delete_many(doc! { "_cid": &cid }).await.map_err(err)?;
            }
        }
        Ok(())
    }

    /// Whether change `cid` reached its carrier write (a carrier or a journal
    /// document holds its entry).
    async fn change_committed(&self, cid: &str) -> Result<bool> {
        for name in CARRIERS_IN {
            if self
                .db
                .collection::<Document>(name)
                .find_one(doc! { "_pending.cid": cid })
                .projection(doc! { "_id": 1 })
                .await
                .map_err(err)?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(self
            .pending_changes()
            .find_one(doc! { "_id": cid })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(err)?
            .is_some())
    }
}

/// Whether change id `cid` (a UUID v7, whose first bits are its start in Unix
/// milliseconds) began more than [`RESERVATION_GRACE`] before `now`. An id
/// that is not a UUID v7 is taken as old.
fn abandoned_long_ago(cid: &str, now: SystemTime) -> bool {
    let Some(started) = Uuid::parse_str(cid).ok().and_then(|u| u.get_timestamp()) else {
        return true;
    };
    let (secs, nanos) = started.to_unix();
    let started = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
    now.duration_since(started)
        .is_ok_and(|age| age > RESERVATION_GRACE)
}

#[cfg(test)]
mod tests {
    //! Recovery of changes interrupted between their entity write and the move-out
    //! of their side effects (single-document mode). The interrupted states are
    //! written here as a crash would leave them.

    use std::time::Duration;

    use imas_core::model::{
        Actor, AuditAction, AuditEntry, AuditFilter, IncidentFilter, NotificationIntent,
        NotificationType, PageRequest, UserId,
    };
    use imas_core::ports::{
        AuditStore, Change, ChangeStore, IncidentStore, IncidentWrite, OutboxStore,
    };
    use mongodb::bson::doc;
    use uuid::Uuid;

    use crate::codec::{audit_doc, incident_doc, outbox_docs};
    use crate::{Atomicity, MongoStore};
    use imas_core::testkit::service_url;
    use imas_core::testkit::store::{at, incident};

    fn audit_entry(n: i64) -> AuditEntry {
        AuditEntry::new(
            AuditAction::IncidentCreated,
            Actor::System,
            None,
            format!("entry {n}"),
            at(n),
        )
    }

    #[tokio::test]
    async fn recover_finishes_interrupted_changes_once() {
        let Some(url) = service_url("MONGODB_URL") else {
            return;
        };
        let name = format!("imas_test_{}", Uuid::new_v4().simple());
        let store = MongoStore::connect_with(&url, &name, Some(Atomicity::SingleDocument))
            .await
            .expect("connect");
        let reporter = UserId::new();
        let kept = incident(reporter, "kept", at(0));
        store
            .commit(Change {
                incident: Some(IncidentWrite::Insert(kept.clone())),
                ..Change::default()
            })
            .await
            .expect("insert");
        let intent = NotificationIntent {
            key: "k-1".into(),
            user: reporter,
            message: "hello".into(),
            kind: NotificationType::Info,
            incident_id: Some(kept.id),
            created_at: at(1),
        };
        let (e1, e2, e3) = (audit_entry(1), audit_entry(2), audit_entry(3));
        // 1. An update whose entity write landed, carrying an audit entry and an
        //    outbox row, and nothing after.
        store
            .incidents()
            .update_one(
                doc! { "_id": kept.id.to_string() },
                doc! { "$push": { "_pending": {
                    "cid": "c1",
                    "audit": [audit_doc(&e1)],
                    "outbox": outbox_docs(std::slice::from_ref(&intent)).expect("outbox"),
                } } },
            )
            .await
            .expect("interrupted update");
        // 2. A change without an entity: only its journal document.
        store
            .pending_changes()
            .insert_one(doc! { "_id": "c2", "cid": "c2", "audit": [audit_doc(&e2)], "outbox": [] })
            .await
            .expect("journal");
        // 3. A delete that marked its incident and stopped.
        let gone = incident(reporter, "gone", at(0));
        let mut marked = incident_doc(&gone);
        marked.insert("_deleting", "c3");
        marked.insert(
            "_pending",
            vec![doc! { "cid": "c3", "audit": [audit_doc(&e3)], "outbox": [] }],
        );
        store
            .incidents()
            .insert_one(marked)
            .await
            .expect("interrupted delete");

        let audit_count = |s: &MongoStore| {
            let s = s.clone();
            async move {
                s.list_audit(&AuditFilter::default(), PageRequest::first(50))
                    .await
                    .expect("audit")
                    .items
                    .len()
            }
        };
        assert_eq!(audit_count(&store).await, 0);
        assert_eq!(store.pending_outbox().await.expect("pending"), 0);
        assert!(
            store.get_incident(gone.id).await.expect("get").is_none(),
            "an incident being deleted is already invisible"
        );
        assert_eq!(
            store
                .count_incidents(&IncidentFilter::default())
                .await
                .expect("count"),
            1
        );

        for _ in 0..2 {
            store.recover().await.expect("recover");
            assert_eq!(audit_count(&store).await, 3, "each entry once");
            assert_eq!(store.pending_outbox().await.expect("pending"), 1);
        }
        let left = store
            .incidents()
            .count_documents(doc! { "$or": [
                { "_pending.0": { "$exists": true } },
                { "_deleting": { "$exists": true } },
            ] })
            .await
            .expect("count");
        assert_eq!(left, 0, "no pending entry or marked incident is left");
        assert_eq!(
            store
                .pending_changes()
                .count_documents(doc! {})
                .await
                .expect("journal"),
            0
        );
        let claimed = store
            .claim_outbox(at(10), Duration::from_secs(30), 10)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].intent, intent);
    }

    /// Reservations (inserts hidden by `_cid`) of a change that never reached
    /// its carrier write are removed once older than the grace period, which
    /// frees their unique keys; a recent one (a change in flight) is kept, and
    /// one whose change's entry is on its carrier is applied.
    #[tokio::test]
    async fn recover_removes_abandoned_reservations_only() {
        use imas_core::model::{Alert, AlertId, AlertStatus, IncidentId, IntegrationId, ServiceId};
        use imas_core::ports::AlertStore;
        use std::time::SystemTime;

        use super::RESERVATION_GRACE;
        use crate::codec::alert_doc;

        let Some(url) = service_url("MONGODB_URL") else {
            return;
        };
        let name = format!("imas_test_{}", Uuid::new_v4().simple());
        let store = MongoStore::connect_with(&url, &name, Some(Atomicity::SingleDocument))
            .await
            .expect("connect");
        let service = ServiceId::new();
        let alert = |key: &str| {
            Alert::triggered(
                IncidentId::new(),
                service,
                IntegrationId::new(),
                key,
                "s",
                at(0),
            )
        };
        let reserve = |a: &Alert, cid: &str| {
            let mut d = alert_doc(a).expect("doc");
            d.insert("_cid", cid);
            d
        };
        // An abandoned change (its id from long ago), one in flight (now), and
        // one whose carrier holds its entry (crashed after the carrier write).
        let old_cid =
            Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_000_000, 0)).to_string();
        let (abandoned, in_flight, committed) = (alert("a"), alert("b"), alert("c"));
        let flight_cid = Uuid::now_v7().to_string();
        let carried_cid =
            Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_000_000, 0)).to_string();
        for (a, cid) in [
            (&abandoned, &old_cid),
            (&in_flight, &flight_cid),
            (&committed, &carried_cid),
        ] {
            store
                .alerts()
                .insert_one(reserve(a, cid))
                .await
                .expect("reserve");
        }
        let carrier = incident(UserId::new(), "carrier", at(0));
        let mut d = incident_doc(&carrier);
        d.insert(
            "_pending",
            vec![doc! {
                "cid": &carried_cid, "audit": [], "outbox": [],
                "reserved": [{ "coll": "alerts", "doc": alert_doc(&committed).expect("doc") }],
                "redo": [],
            }],
        );
        store.incidents().insert_one(d).await.expect("carrier");
        for a in [&abandoned, &in_flight, &committed] {
            assert_eq!(
                store.get_alert(a.id).await.expect("get"),
                None,
                "reserved: hidden"
            );
        }

        store.recover().await.expect("recover");
        let left = |id: AlertId| {
            let s = store.clone();
            async move {
                s.alerts()
                    .find_one(doc! { "_id": id.to_string() })
                    .await
                    .expect("find")
            }
        };
        assert!(left(abandoned.id).await.is_none(), "abandoned: removed");
        assert!(
            left(in_flight.id)
                .await
                .is_some_and(|d| d.contains_key("_cid")),
            "in flight: kept, still hidden"
        );
        assert_eq!(
            store.get_alert(committed.id).await.expect("get"),
            Some(committed.clone()),
            "carried: applied"
        );
        // The abandoned reservation's key is free again.
        assert_eq!(store.open_alert(service, "a").await.expect("open"), None);
        store
            .alerts()
            .insert_one(alert_doc(&alert("a")).expect("doc"))
            .await
            .expect("key free");
        // Past the grace period the in-flight one is abandoned too.
        store
            .remove_abandoned_reservations(SystemTime::now() + RESERVATION_GRACE * 2)
            .await
            .expect("later");
        assert!(left(in_flight.id).await.is_none());
        assert_eq!(committed.status, AlertStatus::Triggered);
    }
}
