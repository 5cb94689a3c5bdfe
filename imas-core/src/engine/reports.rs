//! Reports: the export stream of incidents that CSV and PDF writers consume, and
//! the per-user report limit on new incidents.

use std::time::Duration;

use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{Incident, IncidentFilter, PageRequest, Role, Timestamp};
use crate::rbac::{self, Permission};

/// Stripes of [`Inner::report_locks`](super::Inner::report_locks).
pub(super) const REPORT_LOCKS: usize = 64;

impl Engine {
    /// This process's turn of a limited caller (a `user`, when
    /// [`EngineConfig::report_limit`](super::EngineConfig::report_limit) is set) to report: held from the limit
    /// check to the commit; `None` for callers the limit does not apply to.
    pub(super) async fn report_turn(
        &self,
        who: &Principal,
    ) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match (self.inner.config.report_limit, who.role) {
            (Some(_), Role::User) => {
                use std::hash::{BuildHasher, BuildHasherDefault};
                let hash =
                    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                        .hash_one(who.id);
                let stripe = (hash % REPORT_LOCKS as u64) as usize;
                Some(self.inner.report_locks[stripe].lock().await)
            }
            _ => None,
        }
    }

    /// Refuses a report by a `user` who reached [`EngineConfig::report_limit`](super::EngineConfig::report_limit).
    /// Counted from the store (the incidents the caller reported within the
    /// window), so the limit holds across nodes and restarts.
    pub(super) async fn check_report_limit(&self, who: &Principal, now: Timestamp) -> Result<()> {
        let Some(limit) = self.inner.config.report_limit else {
            return Ok(());
        };
        if who.role != Role::User {
            return Ok(());
        }
        // The window's last `window`, this instant included (saturating).
        let since =
            crate::model::plus_ms(now, 1i64.saturating_sub(crate::model::millis(limit.window)));
        let filter = IncidentFilter {
            reported_by: Some(who.id),
            created_from: Some(since),
            ..Default::default()
        };
        let count = self.inner.store.count_incidents(&filter).await?;
        if count < u64::from(limit.max) {
            return Ok(());
        }
        // The next report may come when the oldest of the last `max` leaves
        // the window.
        let wait = match Some(limit.max).filter(|m| *m <= crate::model::MAX_LIMIT) {
            Some(max) => self
                .inner
                .store
                .list_incidents(&filter, PageRequest::first(max))
                .await?
                .items
                .last()
                .and_then(|oldest| {
                    (crate::model::plus(oldest.created_at, limit.window) - now)
                        .to_std()
                        .ok()
                })
                .unwrap_or(limit.window),
            None => limit.window,
        };
        Err(Error::rate_limited(
            messages::report_limit(limit.max, limit.window),
            wait.max(Duration::from_secs(1)),
        ))
    }

    /// The incidents matching `filter`, newest first, as a stream of pages of up to
    /// `batch` (keyset pagination underneath: memory stays bounded and every
    /// incident comes exactly once). Checks the caller may export reports.
    /// The stream is fused: polled again after its end (as an HTTP compression
    /// body does, looking for trailers), it stays ended instead of panicking.
    pub fn export_incidents(
        &self,
        who: &Principal,
        filter: IncidentFilter,
        batch: u32,
    ) -> Result<impl futures::stream::FusedStream<Item = Result<Vec<Incident>>> + Send + 'static>
    {
        use futures::StreamExt;
        rbac::require(who.role, Permission::ExportReports)?;
        PageRequest::first(batch).validate()?;
        filter.validate()?;
        let store = self.inner.store.clone();
        // State: Some(cursor) = fetch the page after `cursor`; None = done.
        Ok(futures::stream::unfold(Some(None), move |state| {
            let (store, filter) = (store.clone(), filter.clone());
            async move {
                let cursor = state?;
                match store
                    .list_incidents(
                        &filter,
                        PageRequest {
                            limit: batch,
                            cursor,
                        },
                    )
                    .await
                {
                    Ok(page) => Some((Ok(page.items), page.next.map(Some))),
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
        .fuse())
    }
}
