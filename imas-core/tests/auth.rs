//! Password hashing and JWT: expiry, wrong key, `alg: none`, tampering, weak
//! secrets; and sign-in through the engine.

mod common;

use std::time::Duration;

use imas_core::Error;
use imas_core::auth::{JwtKeys, hash_password, verify_password};
use imas_core::model::{AuditAction, AuditFilter, PageRequest, Role, UserId};
use imas_core::ports::AuditStore;
use imas_core::testkit::store::{at, t0};

fn b64(bytes: &[u8]) -> String {
    // URL-safe base64 without padding, enough for forging test tokens.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn keys() -> JwtKeys {
    JwtKeys::new(common::SECRET, Duration::from_secs(3600)).expect("keys")
}

#[test]
fn tokens_round_trip_and_expire_on_the_engine_clock() {
    let k = keys();
    let user = UserId::new();
    let token = k.issue(user, Role::Engineer, t0()).expect("issue");
    let claims = k.verify(&token, at(3_599_999)).expect("valid until exp");
    assert_eq!(
        (claims.user_id().expect("sub"), claims.role),
        (user, Role::Engineer)
    );
    assert_eq!(claims.exp - claims.iat, 3600);
    let expired = k.verify(&token, at(3_600_000)).expect_err("expired at exp");
    assert!(matches!(expired, Error::Unauthorized { .. }), "{expired}");
}

#[test]
fn wrong_key_none_algorithm_and_tampering_are_refused() {
    let k = keys();
    let token = k.issue(UserId::new(), Role::User, t0()).expect("issue");
    let other = JwtKeys::new(
        b"another secret that is long enough!!",
        Duration::from_secs(60),
    )
    .expect("keys");
    assert!(
        matches!(other.verify(&token, t0()), Err(Error::Unauthorized { .. })),
        "wrong key"
    );

    let parts: Vec<&str> = token.split('.').collect();
    let payload = format!(
        r#"{{"sub":"{}","role":"admin","iat":{},"exp":{}}}"#,
        UserId::new(),
        t0().timestamp(),
        t0().timestamp() + 3600
    );
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    for forged in [
        format!("{none_header}.{}.", b64(payload.as_bytes())),
        format!("{none_header}.{}.{}", b64(payload.as_bytes()), parts[2]),
        format!("{}.{}.{}", parts[0], b64(payload.as_bytes()), parts[2]),
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"HS512","typ":"JWT"}"#),
            parts[1],
            parts[2]
        ),
        format!("{}.{}", parts[0], parts[1]),
        "not a token".to_string(),
        String::new(),
    ] {
        let r = k.verify(&forged, t0());
        assert!(
            matches!(r, Err(Error::Unauthorized { .. })),
            "{forged:?} must be refused, got {r:?}"
        );
    }
}

#[test]
fn weak_secrets_are_a_typed_error() {
    let e = JwtKeys::new(b"short", Duration::from_secs(60)).expect_err("weak");
    assert!(
        matches!(&e, Error::Config { name, .. } if name == "JWT_SECRET"),
        "{e}"
    );
    assert!(JwtKeys::new(&[7u8; 31], Duration::from_secs(60)).is_err());
    assert!(JwtKeys::new(&[7u8; 32], Duration::from_secs(60)).is_ok());
    assert!(JwtKeys::random(Duration::from_secs(60)).is_ok());
}

#[test]
fn passwords_hash_with_argon2id() {
    let h = hash_password("correct horse").expect("hash");
    assert!(h.starts_with("$argon2id$"), "{h}");
    assert!(verify_password("correct horse", &h));
    assert!(!verify_password("correct horsE", &h));
    assert!(!verify_password("correct horse", "not a hash"));
    assert_ne!(hash_password("correct horse").expect("hash"), h, "salted");
}

#[test]
fn hashes_are_interchangeable_with_the_argon2_crates_own() {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
    // A hash stored before the engine reused its argon2 memory still verifies...
    let theirs = argon2::Argon2::default()
        .hash_password(b"stored long ago")
        .expect("hash")
        .to_string();
    assert!(verify_password("stored long ago", &theirs));
    assert!(!verify_password("stored long ag0", &theirs));
    // ...with other parameters too (they come from the PHC string)...
    let params = argon2::Params::new(8 * 1024, 3, 1, None).expect("params");
    let small = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(b"other parameters")
        .expect("hash")
        .to_string();
    assert!(verify_password("other parameters", &small));
    // ...and ours verifies with the crate's verifier.
    let ours = hash_password("made here").expect("hash");
    let parsed = PasswordHash::new(&ours).expect("phc");
    assert!(
        argon2::Argon2::default()
            .verify_password(b"made here", &parsed)
            .is_ok()
    );
    assert!(
        argon2::Argon2::default()
            .verify_password(b"made there", &parsed)
            .is_err()
    );
}

#[tokio::test]
async fn login_fails_the_same_way_for_unknown_users_and_wrong_passwords() {
    let w = common::world();
    w.user("ada", Role::User).await;
    let wrong = w
        .engine
        .login("ada", "wrong password")
        .await
        .expect_err("wrong password");
    let unknown = w
        .engine
        .login("nobody", "whatever")
        .await
        .expect_err("unknown user");
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert!(matches!(wrong, Error::Unauthorized { .. }));
    let failures = w
        .store
        .list_audit(
            &AuditFilter {
                action: Some(AuditAction::LoginFailed),
                ..Default::default()
            },
            PageRequest::first(10),
        )
        .await
        .expect("audit");
    assert_eq!(failures.items.len(), 2);
    let token = w
        .engine
        .login("ada", "correct horse battery")
        .await
        .expect("login");
    assert_eq!(
        w.engine.authenticate(&token).await.expect("auth").role,
        Role::User
    );
}

#[tokio::test]
async fn role_changes_and_expiry_apply_to_existing_tokens() {
    let w = common::world();
    let root = w.root().await;
    let ada = w.user("ada", Role::User).await;
    let token = w
        .engine
        .login("ada", "correct horse battery")
        .await
        .expect("login");
    w.engine
        .change_role(&root, ada.id, Role::Engineer)
        .await
        .expect("promote");
    assert_eq!(
        w.engine.authenticate(&token).await.expect("auth").role,
        Role::Engineer,
        "current role, not the token's"
    );
    w.advance(Duration::from_secs(3600));
    assert!(
        matches!(
            w.engine.authenticate(&token).await,
            Err(Error::Unauthorized { .. })
        ),
        "expired"
    );
}
