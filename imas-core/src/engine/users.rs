//! Users and authentication: registration, the bootstrap admin, sign-in (with
//! its limits and audit), token verification, and role changes.

use std::net::IpAddr;
use std::sync::OnceLock;

use super::{Engine, Principal};
use crate::auth::{self};
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{
    Actor, AuditAction, AuditEntry, ProfilePatch, Role, User, UserId, UserSummary, parse_time_zone,
};
use crate::ports::{Change, UserWrite};
use crate::rbac::{self, Permission};
use crate::validation::{
    MAX_NAME, check_len, validate_email, validate_new_user, validate_password,
};

/// Input of [`Engine::register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Display name, 1..=100 characters.
    pub name: String,
    /// 3..=50 of `A-Z a-z 0-9 . _ -`.
    pub username: String,
    /// An email address (stored lower-cased).
    pub email: String,
    /// At least 8 characters.
    pub password: String,
}

/// A fixed hash verified when the username is unknown, so that a wrong username
/// and a wrong password take the same time. Computed on a hashing thread the
/// first time it is needed.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| auth::hash_password("imas-timing-equaliser").unwrap_or_default())
}

impl Engine {
    /// Registers a new account, always with role `user`, and signs it in.
    pub async fn register(&self, input: NewUser) -> Result<(User, String)> {
        let input = validate_new_user(&input)?;
        self.insert_user(input, Role::User, None).await
    }

    /// Creates an account with a role (admin: the permission to change roles),
    /// validated like a registration and audited `USER_REGISTERED` with the
    /// admin as actor. The web console's "new user" form; a taken username or
    /// email is a `Conflict`.
    pub async fn create_user(&self, by: &Principal, input: NewUser, role: Role) -> Result<User> {
        rbac::require(by.role, Permission::ChangeRole)?;
        let input = validate_new_user(&input)?;
        let (user, _) = self
            .insert_user(input, role, Some(Actor::User(by.id)))
            .await?;
        Ok(user)
    }

    pub(super) async fn insert_user(
        &self,
        input: NewUser,
        role: Role,
        by: Option<Actor>,
    ) -> Result<(User, String)> {
        let now = self.now();
        let user = User {
            id: UserId::new(),
            name: input.name,
            username: input.username,
            email: input.email,
            password_hash: self.hash_password(input.password).await?,
            role,
            time_zone: chrono_tz::UTC,
            created_at: now,
        };
        let actor = by.unwrap_or(Actor::User(user.id));
        let audit = AuditEntry::new(
            AuditAction::UserRegistered,
            actor,
            Some(user.id.to_string()),
            messages::user_registered(&user.username, user.role),
            now,
        );
        self.commit(Change {
            user: Some(UserWrite::Insert(user.clone())),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        let token = self.inner.keys.issue(user.id, user.role, now)?;
        Ok((user, token))
    }

    /// Creates the bootstrap admin unless a user with that username exists.
    /// Returns the new admin, or `None` when the username was taken.
    pub async fn ensure_admin(
        &self,
        username: &str,
        password: &str,
        email: &str,
    ) -> Result<Option<User>> {
        if self
            .inner
            .store
            .user_by_username(username.trim())
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let input = validate_new_user(&NewUser {
            name: username.into(),
            username: username.into(),
            email: email.into(),
            password: password.into(),
        })?;
        match self
            .insert_user(input, Role::Admin, Some(Actor::System))
            .await
        {
            Ok((user, _)) => Ok(Some(user)),
            // Another node bootstrapped it at the same moment.
            Err(Error::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Hashes a password on the bounded pool.
    pub(super) async fn hash_password(&self, password: String) -> Result<String> {
        self.inner
            .hash_pool
            .run(move || auth::hash_password(&password))
            .await?
    }

    /// Signs in from an unknown client address; see [`Engine::login_from`].
    pub async fn login(&self, username: &str, password: &str) -> Result<String> {
        self.login_from(username, password, None).await
    }

    /// Signs in a client at `client` (when known). A wrong password and an
    /// unknown user get the same error, after the same work; both are audited
    /// as `LOGIN_FAILED`, a success as `LOGIN`, each with the client address in
    /// its description. After too many failures for the username or the
    /// address ([`EngineConfig::sign_in`](super::EngineConfig::sign_in)) an attempt is refused at once with
    /// [`Error::RateLimited`], without checking the password; when the hashing
    /// pool is full, with [`Error::Unavailable`]. Neither refusal is audited or
    /// counted.
    pub async fn login_from(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<String> {
        let attempt = self.inner.sign_in.admit(username, client, self.now())?;
        // No username holds a NUL (registration refuses it), and no store can
        // look one up or record it: such a name is unknown, recorded without it.
        let user = if username.contains('\0') {
            None
        } else {
            self.inner.store.user_by_username(username).await?
        };
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let password = password.to_string();
        let ok = self
            .inner
            .hash_pool
            .run(move || match hash {
                Some(h) => auth::verify_password(&password, &h),
                None => {
                    let _ = auth::verify_password(&password, dummy_hash());
                    false
                }
            })
            .await?;
        let now = self.now();
        match user {
            Some(u) if ok => {
                let audit = AuditEntry::new(
                    AuditAction::Login,
                    Actor::User(u.id),
                    Some(u.id.to_string()),
                    messages::signed_in(&u.username, client),
                    now,
                );
                self.commit(Change {
                    audit: vec![audit],
                    ..Change::default()
                })
                .await?;
                // Only a sign-in that completed forgets the failures before it
                // (if the commit failed, the attempt is dropped as abandoned).
                attempt.succeeded(now);
                self.inner.keys.issue(u.id, u.role, now)
            }
            _ => {
                attempt.failed(now);
                let target: String = username
                    .chars()
                    .take(100)
                    .map(|c| if c == '\0' { '\u{fffd}' } else { c })
                    .collect();
                let audit = AuditEntry::new(
                    AuditAction::LoginFailed,
                    Actor::System,
                    Some(target),
                    messages::sign_in_failed(client),
                    now,
                );
                self.commit(Change {
                    audit: vec![audit],
                    ..Change::default()
                })
                .await?;
                Err(Error::unauthorized("invalid username or password"))
            }
        }
    }

    /// Verifies a bearer token and loads the caller's current role (a role change
    /// or a deleted account takes effect at once, not when the token expires).
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let claims = self.inner.keys.verify(token, self.now())?;
        self.principal_of(&claims).await
    }

    /// [`Engine::authenticate`], with the instant the token expires (a web
    /// session's cookie and live streams end then).
    pub async fn authenticate_until(
        &self,
        token: &str,
    ) -> Result<(Principal, crate::model::Timestamp)> {
        let claims = self.inner.keys.verify(token, self.now())?;
        let who = self.principal_of(&claims).await?;
        let exp = chrono::DateTime::from_timestamp(claims.exp, 0)
            .ok_or_else(|| Error::unauthorized("token expiry out of range"))?;
        Ok((who, exp))
    }

    /// How long a token issued now stays valid.
    pub fn token_ttl(&self) -> std::time::Duration {
        self.inner.keys.ttl()
    }

    /// The current principal of verified claims.
    pub(super) async fn principal_of(&self, claims: &auth::Claims) -> Result<Principal> {
        let id = claims.user_id()?;
        // The role is read from the store (or from the cache, which holds it only
        // until the next user write), so a role change applies to live tokens.
        let at = self.inner.store.generation();
        if let Some(p) = self.inner.cache.principal(id, at) {
            return Ok(p);
        }
        let user = self
            .inner
            .store
            .get_user(id)
            .await?
            .ok_or_else(|| Error::unauthorized("unknown user"))?;
        let p = Principal {
            id: user.id,
            role: user.role,
        };
        self.inner.cache.put_principal(p, at);
        Ok(p)
    }

    /// A user by id (admins, or the user themself).
    pub async fn get_user(&self, who: &Principal, id: UserId) -> Result<User> {
        if who.id != id && who.role != Role::Admin {
            return Err(Error::NotFound { entity: "user" });
        }
        self.inner
            .store
            .get_user(id)
            .await?
            .ok_or(Error::NotFound { entity: "user" })
    }

    /// Changes a user's role (admin).
    pub async fn change_role(&self, who: &Principal, id: UserId, role: Role) -> Result<User> {
        rbac::require(who.role, Permission::ChangeRole)?;
        let _serialised = self.inner.role_change.lock().await;
        let mut user = self
            .inner
            .store
            .get_user(id)
            .await?
            .ok_or(Error::NotFound { entity: "user" })?;
        if user.role == role {
            return Ok(user);
        }
        if user.role == Role::Admin
            && self.inner.store.users_with_role(Role::Admin).await?.len() <= 1
        {
            return Err(Error::conflict(messages::last_admin(&user.username)));
        }
        let audit = AuditEntry::new(
            AuditAction::RoleChanged,
            Actor::User(who.id),
            Some(id.to_string()),
            messages::role_changed(&user.username, user.role, role),
            self.now(),
        );
        self.commit(Change {
            user: Some(UserWrite::SetRole { id, role }),
            audit: vec![audit],
            ..Change::default()
        })
        .await?;
        user.role = role;
        Ok(user)
    }
}

impl Engine {
    /// Users newest first (admin, engineer), as summaries.
    pub async fn list_users(
        &self,
        by: &Principal,
        page: crate::model::PageRequest,
    ) -> Result<crate::model::Page<UserSummary>> {
        rbac::require(by.role, Permission::ListUsers)?;
        page.validate()?;
        let page = self.inner.store.list_users(page).await?;
        Ok(crate::model::Page {
            items: page.items.iter().map(UserSummary::from).collect(),
            next: page.next,
        })
    }

    /// The caller's own account (any role).
    pub async fn me(&self, by: &Principal) -> Result<User> {
        self.inner
            .store
            .get_user(by.id)
            .await?
            .ok_or(Error::NotFound { entity: "user" })
    }

    /// Changes the caller's name, email, time zone or password (any role); a
    /// new password needs the current one (`Validation` on `currentPassword`
    /// when absent or wrong; wrong ones count as failed sign-ins of the
    /// username, and past the sign-in limit the change is refused with
    /// `RateLimited`). Audited `PROFILE_UPDATED` / `PASSWORD_CHANGED`; an
    /// email another user has is a `Conflict`.
    pub async fn update_me(&self, by: &Principal, patch: ProfilePatch) -> Result<User> {
        let name = match &patch.name {
            Some(n) => {
                let n = n.trim().to_string();
                check_len("name", &n, 1, MAX_NAME)?;
                Some(n)
            }
            None => None,
        };
        let email = patch.email.as_deref().map(validate_email).transpose()?;
        let time_zone = patch
            .time_zone
            .as_deref()
            .map(|z| parse_time_zone("timeZone", z))
            .transpose()?;
        if let Some(p) = &patch.password {
            validate_password(p)?;
            if patch.current_password.is_none() {
                return Err(Error::validation(
                    "currentPassword",
                    messages::CURRENT_PASSWORD_REQUIRED,
                ));
            }
        }
        let before = self.me(by).await?;
        let mut after = before.clone();
        let mut changed = Vec::new();
        if let Some(n) = name.filter(|n| *n != before.name) {
            after.name = n;
            changed.push("name");
        }
        if let Some(e) = email.filter(|e| *e != before.email) {
            after.email = e;
            changed.push("email");
        }
        if let Some(z) = time_zone.filter(|z| *z != before.time_zone) {
            after.time_zone = z;
            changed.push("timeZone");
        }
        let mut new_password = false;
        if let (Some(password), Some(current)) = (patch.password, patch.current_password) {
            let attempt = self
                .inner
                .sign_in
                .admit(&before.username, None, self.now())?;
            let hash = before.password_hash.clone();
            let ok = self
                .inner
                .hash_pool
                .run(move || auth::verify_password(&current, &hash))
                .await?;
            if !ok {
                attempt.failed(self.now());
                return Err(Error::validation(
                    "currentPassword",
                    messages::CURRENT_PASSWORD_WRONG,
                ));
            }
            attempt.succeeded(self.now());
            after.password_hash = self.hash_password(password).await?;
            new_password = true;
        }
        if changed.is_empty() && !new_password {
            return Ok(before);
        }
        // Hashing took a while: another change of this profile may have
        // committed meanwhile. Only the fields this one changes are written
        // over what is stored now, so that it does not undo the other (a
        // password changed meanwhile stays changed). The window left is
        // between this read and the commit, no longer the hashing.
        let fresh = self
            .inner
            .store
            .get_user(by.id)
            .await?
            .ok_or(Error::NotFound { entity: "user" })?;
        if new_password && fresh.password_hash != before.password_hash {
            return Err(Error::conflict(messages::PASSWORD_CHANGED_MEANWHILE));
        }
        let mut merged = fresh;
        if changed.contains(&"name") {
            merged.name = after.name;
        }
        if changed.contains(&"email") {
            merged.email = after.email;
        }
        if changed.contains(&"timeZone") {
            merged.time_zone = after.time_zone;
        }
        if new_password {
            merged.password_hash = after.password_hash;
        }
        let after = merged;
        let now = self.now();
        let actor = Actor::User(by.id);
        let target = Some(by.id.to_string());
        let mut audit = Vec::new();
        if !changed.is_empty() {
            audit.push(AuditEntry::new(
                AuditAction::ProfileUpdated,
                actor,
                target.clone(),
                messages::profile_updated(&before.username, &changed),
                now,
            ));
        }
        if new_password {
            audit.push(AuditEntry::new(
                AuditAction::PasswordChanged,
                actor,
                target,
                messages::password_changed(&before.username),
                now,
            ));
        }
        self.commit(Change {
            user: Some(UserWrite::UpdateProfile(after.clone())),
            audit,
            ..Change::default()
        })
        .await?;
        Ok(after)
    }
}
