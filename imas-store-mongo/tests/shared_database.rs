//! Two MongoDB stores on one database, as two IMAS nodes hold: each store's
//! generation follows the other's writes (through the database's change
//! stream), so an engine's read cache never outlives another node's change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use imas_core::Engine;
use imas_core::Principal;
use imas_core::auth::JwtKeys;
use imas_core::engine::{NewIncident, NewUser};
use imas_core::model::{IncidentFilter, PageRequest, Role};
use imas_core::ports::{Change, ChangeStore, Store, UserWrite};
use imas_core::testkit::service_url;
use imas_core::testkit::store::{expect_generation, user};
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

/// Polls `check` (every 10 ms, for up to 10 s) until it holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "after 10 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    let keys = JwtKeys::new(&[7u8; 32], Duration::from_secs(3600)).expect("keys");
    let engine = |store: Arc<MongoStore>| {
        Engine::builder(store as Arc<dyn Store>)
            .jwt_keys(keys.clone())
            .build()
            .expect("engine")
    };
    let (ea, eb) = (engine(a.clone()), engine(b.clone()));
    let admin = user("root", Role::Admin);
    a.commit(Change {
        user: Some(UserWrite::Insert(admin.clone())),
        ..Change::default()
    })
    .await
    .expect("admin");
    let root = Principal {
        id: admin.id,
        role: Role::Admin,
    };
    let (member, token) = eb
        .register(NewUser {
            name: "Member".into(),
            username: "member".into(),
            email: "member@example.com".into(),
            password: "password 123".into(),
        })
        .await
        .expect("register");
    let titles = async |e: &Engine| {
        e.list_incidents(&root, &IncidentFilter::default(), PageRequest::first(50))
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|i| i.title)
            .collect::<Vec<_>>()
    };
    ea.create_incident(
        &root,
        NewIncident {
            title: "first".into(),
            ..Default::default()
        },
    )
    .await
    .expect("create");
    eventually("B lists A's first incident", async || {
        titles(&eb).await == ["first"]
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            eb.authenticate(&token).await.expect("auth").role,
            Role::User
        );
        assert_eq!(titles(&eb).await, ["first"], "B's page, cached");
    }
    ea.change_role(&root, member.id, Role::Engineer)
        .await
        .expect("role");
    ea.create_incident(
        &root,
        NewIncident {
            title: "second".into(),
            ..Default::default()
        },
    )
    .await
    .expect("create");
    eventually("B serves the new role and the new page", async || {
        eb.authenticate(&token).await.expect("auth").role == Role::Engineer
            && titles(&eb).await == ["second", "first"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_follows_the_other_node_with_transactions() {
    generation_follows_the_other_node(Atomicity::Transactions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_follows_the_other_node_with_single_documents() {
    generation_follows_the_other_node(Atomicity::SingleDocument).await;
}
