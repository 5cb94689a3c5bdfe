//! Two MongoDB stores on one database, as two IMAS nodes hold: each store's
//! generation follows the other's writes (through the database's change
//! stream), so an engine's read cache never outlives another node's change.

use std::sync::Arc;

use imas_core::model::Role;
use imas_core::ports::{Change, ChangeStore, Store, UserWrite};
use imas_core::testkit::service_url;
use imas_core::testkit::store::{
    caches_follow_the_other_node, eventually, expect_generation, user,
};
use imas_store_mongo::{Atomicity, MongoStore};

async fn pair(atomicity: Atomicity) -> Option<(Arc<MongoStore>, Arc<MongoStore>)> {
    let url = service_url("MONGODB_URL")?;
    let name = format!("imas_test_{}", uuid::Uuid::new_v4().simple());
    let open = async || {
        Arc::new(
            MongoStore::connect_with(&url, &name, Some(atomicity))
                .await
                .expect("connect"),
        )
    };
    Some((open().await, open().await))
}

async fn generation_follows_the_other_node(atomicity: Atomicity) {
    let Some((a, b)) = pair(atomicity).await else {
        return;
    };
    let before = expect_generation(&*b).await;
    let ada = user("ada", Role::User);
    a.commit(Change {
        user: Some(UserWrite::Insert(ada.clone())),
        ..Change::default()
    })
    .await
    .expect("insert on A");
    eventually("B's users generation moves with A's insert", async || {
        b.generation().is_some_and(|g| g.users > before.users)
    })
    .await;

    // Engines on both: B caches a role and a page, A changes both.
    caches_follow_the_other_node(a, b as Arc<dyn Store>).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_follows_the_other_node_with_transactions() {
    generation_follows_the_other_node(Atomicity::Transactions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_follows_the_other_node_with_single_documents() {
    generation_follows_the_other_node(Atomicity::SingleDocument).await;
}
