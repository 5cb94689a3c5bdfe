//! Authentication: argon2id password hashing and HS256 JSON Web Tokens carrying
//! `sub`, `role`, `iat` and `exp`. Expiry is checked against the engine's clock,
//! not the system's, so it is testable like every other deadline.

use std::fmt;
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm as Argon2Algorithm, Argon2, Block, Params, Version};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Role, Timestamp, UserId};

/// Shortest accepted HS256 secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// Default token lifetime: one hour, as the original.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

thread_local! {
    /// The argon2 memory of this thread, allocated once and reused by every
    /// hash computed here (19 MiB with the default parameters). Allocating
    /// and freeing that much per hash fragments the C allocator's arenas:
    /// measured, the resident size grew by 19 MiB with each sequential hash.
    static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs argon2 over this thread's reused memory of `blocks` blocks.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < blocks {
            m.resize(blocks, Block::new());
        }
        f(&mut m[..blocks])
    })
}

/// Hashes a password with argon2id (default parameters, random salt) into a PHC
/// string. CPU-heavy: call it off the async executor.
pub fn hash_password(password: &str) -> Result<String> {
    let fail = |e: &dyn fmt::Display| Error::backend("argon2", e.to_string());
    let argon = Argon2::default();
    let params = argon.params().clone();
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| fail(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(params.block_count(), |memory| {
        argon.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)
    })
    .map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Argon2Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| fail(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| fail(&e))?),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches a PHC string from [`hash_password`] (argon2
/// with the parameters the string names). A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Argon2Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version {
        Some(v) => match Version::try_from(v) {
            Ok(v) => v,
            Err(_) => return false,
        },
        None => Version::default(),
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let hashed = with_memory(blocks, |memory| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory)
    });
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|o| &o == expected)
}

/// The claims of an IMAS token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The role when the token was issued (the engine re-reads the current one).
    pub role: Role,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

impl Claims {
    /// The user id in `sub`.
    pub fn user_id(&self) -> Result<UserId> {
        self.sub
            .parse()
            .map_err(|_| Error::unauthorized("token subject is not a user id"))
    }
}

/// HS256 signing and verification keys and the token lifetime.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("secret", &"<redacted>")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl JwtKeys {
    /// Keys from a secret of at least [`MIN_SECRET_LEN`] bytes, else
    /// [`Error::Config`] naming `JWT_SECRET`.
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(Error::config(
                "JWT_SECRET",
                format!(
                    "expected at least {MIN_SECRET_LEN} bytes, got {}",
                    secret.len()
                ),
            ));
        }
        if ttl.is_zero() {
            return Err(Error::config(
                "token lifetime",
                "expected a positive duration",
            ));
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        })
    }

    /// Keys from a fresh random 32-byte secret: tokens die with the process. For
    /// development and tests only.
    pub fn random(ttl: Duration) -> Result<Self> {
        let mut secret = [0u8; MIN_SECRET_LEN];
        getrandom::fill(&mut secret).map_err(|e| Error::backend("getrandom", e.to_string()))?;
        Self::new(&secret, ttl)
    }

    /// The token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a token for a user at `now`.
    pub fn issue(&self, user: UserId, role: Role, now: Timestamp) -> Result<String> {
        let iat = now.timestamp();
        let claims = Claims {
            sub: user.to_string(),
            role,
            iat,
            exp: iat + self.ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::backend("jsonwebtoken", e))
    }

    /// Verifies a token's signature (HS256 only; `alg: none` and every other
    /// algorithm are refused) and its expiry at `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against the engine clock.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| Error::unauthorized(format!("invalid token ({e})")))?;
        if now.timestamp() >= data.claims.exp {
            return Err(Error::unauthorized("token expired"));
        }
        Ok(data.claims)
    }
}
