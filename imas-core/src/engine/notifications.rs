//! Notifications as their recipients and admins see them: the caller's list and
//! live stream, read marks, and the dead letters an admin lists and redrives.

use std::sync::Arc;
use std::time::Duration;

use super::{Engine, Principal};
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, Notification, NotificationId, Page, PageRequest, UserId,
};
use crate::ports::{Change, DeadLetter};
use crate::rbac::{self, Permission};

/// How long a caller refused a live stream is told to wait before trying again.
const STREAM_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How many undelivered live notifications a slow stream may fall behind by
/// before it skips ahead (the list endpoint still has them all).
pub(super) const LIVE_CAPACITY: usize = 1024;

/// One open live stream of a user: taken from [`Inner::streams`], given back
/// when the stream is dropped (it ended, or its client went away).
#[derive(Debug)]
struct StreamSlot {
    streams: Arc<std::sync::Mutex<std::collections::HashMap<UserId, usize>>>,
    user: UserId,
}

impl StreamSlot {
    fn take(
        streams: &Arc<std::sync::Mutex<std::collections::HashMap<UserId, usize>>>,
        user: UserId,
        max: usize,
    ) -> Result<Self> {
        let mut open = streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(user).or_insert(0);
        if *n >= max {
            return Err(Error::rate_limited(
                messages::too_many_streams(max),
                STREAM_RETRY_AFTER,
            ));
        }
        *n += 1;
        Ok(Self {
            streams: streams.clone(),
            user,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl Engine {
    /// The caller's notifications, newest first.
    pub async fn list_notifications(
        &self,
        who: &Principal,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        rbac::require(who.role, Permission::ReadOwnNotifications)?;
        page.validate()?;
        self.inner.store.list_notifications(who.id, page).await
    }

    /// How many of the caller's newest `cap` notifications (1..=500) are
    /// unread, and whether there may be more unread beyond them (the web
    /// console shows `cap+` then).
    pub async fn unread_notifications(&self, who: &Principal, cap: u32) -> Result<(u64, bool)> {
        rbac::require(who.role, Permission::ReadOwnNotifications)?;
        let page = PageRequest::first(cap);
        page.validate()?;
        let found = self.inner.store.list_notifications(who.id, page).await?;
        let unread = found.items.iter().filter(|n| !n.read).count() as u64;
        let more = found.next.is_some() && unread == found.items.len() as u64;
        Ok((unread, more))
    }

    /// The caller's new notifications as they are delivered by this process, for
    /// live streams (Server-Sent Events). Only the caller's own ever appear. A
    /// stream that falls far behind skips ahead; `list_notifications` has all.
    ///
    /// A user holds at most [`EngineConfig::max_streams_per_user`](super::EngineConfig::max_streams_per_user) streams at
    /// once: one more is [`Error::RateLimited`] until one is dropped. The
    /// stream is fused: polled again after its end, it stays ended.
    pub fn subscribe_notifications(
        &self,
        who: &Principal,
    ) -> Result<impl futures::stream::FusedStream<Item = Notification> + Send + 'static + use<>>
    {
        use futures::StreamExt;
        rbac::require(who.role, Permission::ReadOwnNotifications)?;
        let slot = StreamSlot::take(
            &self.inner.streams,
            who.id,
            self.inner.config.max_streams_per_user,
        )?;
        let me = who.id;
        let rx = self.inner.live.subscribe();
        Ok(
            futures::stream::unfold((rx, slot), move |(mut rx, slot)| async move {
                loop {
                    match rx.recv().await {
                        Ok(n) if n.user == me => return Some((n, (rx, slot))),
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            continue;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            })
            .fuse(),
        )
    }

    /// The live stream of the bearer of `token` ([`Engine::subscribe_notifications`]
    /// after [`Engine::authenticate`]), which ends when the token expires: a
    /// stream never outlives the credentials that opened it.
    pub async fn open_notification_stream(
        &self,
        token: &str,
    ) -> Result<impl futures::stream::FusedStream<Item = Notification> + Send + 'static + use<>>
    {
        let claims = self.inner.keys.verify(token, self.now())?;
        let who = self.principal_of(&claims).await?;
        let events = self.subscribe_notifications(&who)?;
        let left_ms = claims
            .exp
            .saturating_mul(1000)
            .saturating_sub(self.now().timestamp_millis())
            .max(0);
        let expiry = tokio::time::sleep(Duration::from_millis(left_ms as u64));
        Ok(futures::StreamExt::fuse(futures::StreamExt::take_until(
            events, expiry,
        )))
    }

    /// Dead-lettered notifications, oldest first, at most `limit` (1..=500):
    /// deliveries that failed in a way retrying cannot fix, or ran out of
    /// attempts (admin).
    pub async fn list_dead_letters(&self, who: &Principal, limit: u32) -> Result<Vec<DeadLetter>> {
        rbac::require(who.role, Permission::ManageDeadLetters)?;
        PageRequest::first(limit).validate()?;
        self.inner.queue.dead_letters(limit as usize).await
    }

    /// Hands the dead-lettered notification `key` to the workers again, with
    /// fresh attempts (admin; audited as `DEAD_LETTER_REDRIVEN`). Channels
    /// that had already delivered it do not send it again. `NotFound` when no
    /// dead letter has this key.
    pub async fn redrive_dead_letter(&self, who: &Principal, key: &str) -> Result<()> {
        rbac::require(who.role, Permission::ManageDeadLetters)?;
        if !self.inner.queue.redrive(key).await? {
            return Err(Error::NotFound {
                entity: "dead letter",
            });
        }
        let target: String = key.chars().take(200).collect();
        let audit = AuditEntry::new(
            AuditAction::DeadLetterRedriven,
            Actor::User(who.id),
            Some(target.clone()),
            messages::dead_letter_redriven(&target),
            self.now(),
        );
        self.commit(Change {
            audit: vec![audit],
            ..Change::default()
        })
        .await
    }

    /// Marks one of the caller's notifications read; anybody else's is `NotFound`.
    pub async fn mark_notification_read(
        &self,
        who: &Principal,
        id: NotificationId,
    ) -> Result<Notification> {
        rbac::require(who.role, Permission::ReadOwnNotifications)?;
        self.inner.store.mark_read(who.id, id).await
    }
}
