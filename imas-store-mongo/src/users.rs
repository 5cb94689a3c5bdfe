//! [`UserStore`] on the `users` collection (unique `username` and `email`); user
//! writes go through the [commit](crate::commit).

use async_trait::async_trait;
use futures::TryStreamExt;
use imas_core::error::Result;
use imas_core::model::{Cursor, Page, PageRequest, Role, User, UserId};
use imas_core::ports::UserStore;
use mongodb::bson::{Document, doc};

use crate::MongoStore;
use crate::codec::decode_user;
use crate::error::err;

#[async_trait]
impl UserStore for MongoStore {
    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        let d = self
            .users()
            .find_one(doc! { "_id": id.to_string() })
            .await
            .map_err(err)?;
        d.as_ref().map(decode_user).transpose()
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        self.page(self.users(), doc! {}, page, decode_user, |u| Cursor {
            created_at: u.created_at,
            id: u.id.0,
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let d = self
            .users()
            .find_one(doc! { "username": username })
            .await
            .map_err(err)?;
        d.as_ref().map(decode_user).transpose()
    }

    async fn users_with_role(&self, role: Role) -> Result<Vec<User>> {
        let docs: Vec<Document> = self
            .users()
            .find(doc! { "role": role.as_str() })
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        docs.iter().map(decode_user).collect()
    }
}
