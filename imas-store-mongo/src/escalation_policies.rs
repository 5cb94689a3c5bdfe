//! [`EscalationPolicyStore`] on the `escalation_policies` collection; policy
//! writes go through the [commit](crate::commit), which refuses to delete a
//! policy a service uses ([`MongoStore::policy_in_use`]).

use async_trait::async_trait;
use imas_core::error::{Error, Result};
use imas_core::model::{Cursor, EscalationPolicy, EscalationPolicyId, Page, PageRequest};
use imas_core::ports::EscalationPolicyStore;
use mongodb::ClientSession;
use mongodb::bson::doc;

use crate::MongoStore;
use crate::codec::decode_escalation_policy;
use crate::error::err;
use crate::query::{live, visible};

#[async_trait]
impl EscalationPolicyStore for MongoStore {
    async fn get_escalation_policy(
        &self,
        id: EscalationPolicyId,
    ) -> Result<Option<EscalationPolicy>> {
        let d = self
            .escalation_policies()
            .find_one(live(visible(doc! { "_id": id.to_string() })))
            .await
            .map_err(err)?;
        d.as_ref().map(decode_escalation_policy).transpose()
    }

    async fn list_escalation_policies(&self, page: PageRequest) -> Result<Page<EscalationPolicy>> {
        self.page(
            self.escalation_policies(),
            live(visible(doc! {})),
            page,
            decode_escalation_policy,
            |p| Cursor {
                created_at: p.created_at,
                id: p.id.0,
            },
        )
        .await
    }
}

impl MongoStore {
    /// The conflict of deleting policy `id` while a service uses it (read in
    /// `session`'s transaction when one is given; on the index
    /// `services.escalation_policy_id`), or `Ok` when none does.
    pub(crate) async fn policy_in_use(
        &self,
        id: &str,
        session: Option<&mut ClientSession>,
    ) -> Result<()> {
        let services = self.services();
        let find = services
            .find_one(live(doc! { "escalation_policy_id": id }))
            .projection(doc! { "_id": 1, "name": 1 });
        let found = match session {
            Some(s) => find.session(s).await,
            None => find.await,
        }
        .map_err(err)?;
        match found {
            None => Ok(()),
            Some(s) => Err(Error::conflict(format!(
                "escalation policy {id} is used by service {:?}; \
                 change the service's escalation policy first",
                s.get_str("name").unwrap_or_default()
            ))),
        }
    }
}
