//! Input validation: the length and character rules of every text field, user
//! names, email addresses and passwords. Plain functions; errors name the field.

use crate::engine::NewUser;
use crate::error::{Error, Result};
use crate::messages;

pub(crate) const MAX_NAME: usize = 100;

pub(crate) const MAX_TITLE: usize = 200;

pub(crate) const MAX_DESCRIPTION: usize = 10_000;

pub(crate) const MAX_REASON: usize = 1_000;

pub(crate) const MIN_PASSWORD: usize = 8;

pub(crate) const MAX_PASSWORD: usize = 1_024;

pub(crate) fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    // No store keeps a NUL character in text (PostgreSQL refuses it).
    if value.contains('\0') {
        return Err(Error::validation(
            field,
            "expected text without NUL characters",
        ));
    }
    let n = value.chars().count();
    if n < min || n > max {
        return Err(Error::validation(
            field,
            messages::wrong_length(min, max, n),
        ));
    }
    Ok(())
}

pub(crate) fn validate_title(title: &str) -> Result<()> {
    check_len("title", title, 1, MAX_TITLE)?;
    if title.trim().is_empty() {
        return Err(Error::validation("title", "expected some non-blank text"));
    }
    Ok(())
}

pub(crate) fn validate_new_user(u: &NewUser) -> Result<NewUser> {
    let name = u.name.trim().to_string();
    check_len("name", &name, 1, MAX_NAME)?;
    let username = u.username.trim().to_string();
    check_len("username", &username, 3, 50)?;
    if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(Error::validation(
            "username",
            "expected only letters, digits, '.', '_' and '-'",
        ));
    }
    let email = validate_email(&u.email)?;
    validate_password(&u.password)?;
    Ok(NewUser {
        name,
        username,
        email,
        password: u.password.clone(),
    })
}

/// An email address as stored (trimmed, lower-cased), if lettre's parser
/// accepts it (one address of the form `local@domain`: no list, no display
/// name, so that every stored address can be mailed) and its domain has a dot.
pub fn validate_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    check_len("email", &email, 3, 254)?;
    let address = email
        .parse::<lettre::Address>()
        .map_err(|e| Error::validation("email", messages::not_an_email(e)))?;
    // A domain of one label (`a@b`) is no address mail can reach from outside;
    // an address literal (`a@[192.0.2.1]`) is accepted as lettre parses it.
    let domain = address.domain();
    if !domain.starts_with('[') && !domain.trim_end_matches('.').contains('.') {
        return Err(Error::validation(
            "email",
            messages::not_an_email("the domain has no dot"),
        ));
    }
    Ok(email)
}

/// A password's length, and that it is not among the commonly used passwords
/// (the table of the `passwords` crate, about 100,000 entries; compared as
/// typed and lower-cased).
pub fn validate_password(password: &str) -> Result<()> {
    check_len("password", password, MIN_PASSWORD, MAX_PASSWORD)?;
    let lower = password.to_lowercase();
    if passwords::analyzer::is_common_password(password)
        || passwords::analyzer::is_common_password(&lower)
        || passwords::analyzer::is_common_password(lower.trim())
    {
        return Err(Error::validation(
            "password",
            "this password is among the most commonly used ones; choose another",
        ));
    }
    Ok(())
}
