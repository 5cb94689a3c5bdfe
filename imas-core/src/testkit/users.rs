//! The users contract of issue 18: time zones, the newest-first list, profile
//! updates (the older user tests are in [`super::store`]). Each function takes
//! a fresh, empty store.

use crate::model::{Actor, AuditAction, Role, User, UserId};
use crate::ports::{Change, Store, UserWrite};

use super::store::{
    all_pages, at, audit, commit, first_audit_entries, is_conflict, is_not_found, user,
};

async fn add(store: &dyn Store, u: &User) {
    commit(
        store,
        Change {
            user: Some(UserWrite::Insert(u.clone())),
            ..Change::default()
        },
    )
    .await;
}

async fn get(store: &dyn Store, id: UserId) -> Option<User> {
    store.get_user(id).await.expect("get_user")
}

/// A user's time zone reads back as written through every read: by id, by
/// username, by role, in the list.
pub async fn users_keep_time_zone(store: &dyn Store) {
    let zones = [
        chrono_tz::UTC,
        chrono_tz::Europe::Berlin,
        chrono_tz::Asia::Kolkata,
        chrono_tz::America::Argentina::Buenos_Aires,
        chrono_tz::Etc::GMTPlus12,
    ];
    let mut all = Vec::new();
    for (n, tz) in zones.iter().enumerate() {
        let mut u = user(&format!("tz{n}"), Role::Engineer);
        u.time_zone = *tz;
        add(store, &u).await;
        assert_eq!(get(store, u.id).await, Some(u.clone()), "{tz} by id");
        assert_eq!(
            store.user_by_username(&u.username).await.expect("by name"),
            Some(u.clone()),
            "{tz} by username"
        );
        all.push(u);
    }
    let by_role = store.users_with_role(Role::Engineer).await.expect("role");
    assert_eq!(by_role.len(), zones.len(), "every engineer listed by role");
    for u in &all {
        assert!(by_role.contains(u), "{} listed by role whole", u.username);
    }
    let listed = all_pages(2, |p| store.list_users(p)).await;
    for u in &all {
        assert!(listed.contains(u), "{} listed whole", u.username);
    }
}

/// Users list newest first by `(created_at, id)` in keyset pages (pairs
/// sharing an instant, the id breaking ties), whole.
pub async fn users_listed_newest_first(store: &dyn Store) {
    let mut all = Vec::new();
    for n in 0..11 {
        let mut u = user(&format!("user{n:02}"), Role::ALL[n as usize % 3]);
        u.created_at = at(n / 2 * 1000);
        add(store, &u).await;
        all.push(u);
    }
    all.sort_by_key(|u| std::cmp::Reverse((u.created_at, u.id.0)));
    for limit in [1, 3, 11, 50] {
        let listed = all_pages(limit, |p| store.list_users(p)).await;
        assert_eq!(
            listed.iter().map(|u| &u.username).collect::<Vec<_>>(),
            all.iter().map(|u| &u.username).collect::<Vec<_>>(),
            "users newest first by (createdAt, id), pages of {limit}"
        );
        assert_eq!(listed, all, "pages of {limit} hold the users whole");
    }
    let exact = store
        .list_users(crate::model::PageRequest::first(11))
        .await
        .expect("list");
    assert_eq!(
        exact.next, None,
        "an exactly full last page has no next cursor"
    );
}

/// `UpdateProfile` replaces name, email, time zone and password hash and
/// keeps id, username, role and creation time; the old email is free, the new
/// one taken; another user's email is a `Conflict` (naming the email) that
/// changes nothing and writes nothing of its change; an unknown user is
/// `NotFound`.
pub async fn profile_updates(store: &dyn Store) {
    let ada = user("ada", Role::Engineer);
    let bob = user("bob", Role::Admin);
    add(store, &ada).await;
    add(store, &bob).await;

    let mut new = ada.clone();
    new.name = "Ada King, Countess of Lovelace".into();
    new.email = "countess@example.com".into();
    new.time_zone = chrono_tz::Europe::London;
    new.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$new".into();
    // What the write must not change, even when the user given says otherwise.
    let mut given = new.clone();
    given.username = "mallory".into();
    given.role = Role::Admin;
    given.created_at = at(77_000);
    let mut change = Change {
        user: Some(UserWrite::UpdateProfile(given)),
        ..Change::default()
    };
    change.audit.push(audit(
        AuditAction::ProfileUpdated,
        Actor::User(ada.id),
        "ada",
        at(1),
    ));
    commit(store, change).await;
    assert_eq!(
        get(store, ada.id).await,
        Some(new.clone()),
        "name, email, time zone and hash replaced; username, role and creation kept"
    );
    assert_eq!(
        store.user_by_username("ada").await.expect("by name"),
        Some(new.clone()),
        "the username still finds the user"
    );
    assert_eq!(
        store.user_by_username("mallory").await.expect("by name"),
        None,
        "the username is not changed by a profile update"
    );
    assert_eq!(first_audit_entries(store).await.len(), 1, "with its audit");

    // The old email is free, the new one taken.
    let mut carol = user("carol", Role::User);
    carol.email = ada.email.clone();
    add(store, &carol).await;
    let mut dave = user("dave", Role::User);
    dave.email = new.email.clone();
    let r = store
        .commit(Change {
            user: Some(UserWrite::Insert(dave.clone())),
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "a new user with the updated email is a Conflict: {r:?}"
    );

    // Another user's email.
    let mut steal = bob.clone();
    steal.email = new.email.clone();
    steal.name = "Bob the thief".into();
    let r = store
        .commit(Change {
            user: Some(UserWrite::UpdateProfile(steal)),
            audit: vec![audit(
                AuditAction::ProfileUpdated,
                Actor::User(bob.id),
                "bob",
                at(2),
            )],
            ..Change::default()
        })
        .await;
    assert!(
        is_conflict(&r),
        "taking another user's email is a Conflict: {r:?}"
    );
    if let Err(e) = &r {
        assert!(
            e.to_string().contains("email"),
            "the conflict names the email: {e}"
        );
    }
    assert_eq!(
        get(store, bob.id).await,
        Some(bob.clone()),
        "the refused update changes nothing"
    );
    assert_eq!(
        first_audit_entries(store).await.len(),
        1,
        "nor writes its audit entry"
    );

    // Keeping one's own email is no conflict.
    let mut same = bob.clone();
    same.name = "Robert".into();
    same.time_zone = chrono_tz::Asia::Tokyo;
    commit(
        store,
        Change {
            user: Some(UserWrite::UpdateProfile(same.clone())),
            ..Change::default()
        },
    )
    .await;
    assert_eq!(get(store, bob.id).await, Some(same));

    let mut ghost = user("ghost", Role::User);
    ghost.email = "ghost@example.com".into();
    let r = store
        .commit(Change {
            user: Some(UserWrite::UpdateProfile(ghost.clone())),
            ..Change::default()
        })
        .await;
    assert!(
        is_not_found(&r),
        "updating an unknown user's profile is NotFound: {r:?}"
    );
    assert_eq!(get(store, ghost.id).await, None, "and creates nobody");
    assert_eq!(
        store.user_by_username("ghost").await.expect("by name"),
        None
    );
}
