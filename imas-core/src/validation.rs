//! Input validation: the length and character rules of every text field, user
//! names, email addresses and passwords. Plain functions; errors name the field.

use crate::engine::NewUser;
use crate::error::{Error, Result};
use crate::messages;
use crate::model::{Timestamp, check_instant, from_millis};

/// Longest display name, in characters.
pub(crate) const MAX_NAME: usize = 100;
/// Longest incident title, in characters.
pub(crate) const MAX_TITLE: usize = 200;
/// Longest incident description, in characters.
pub(crate) const MAX_DESCRIPTION: usize = 10_000;
/// Longest reason of a manual escalation, in characters.
pub(crate) const MAX_REASON: usize = 1_000;
/// Shortest password, in characters.
pub(crate) const MIN_PASSWORD: usize = 8;
/// Longest password, in characters.
pub(crate) const MAX_PASSWORD: usize = 1_024;

/// `value` when it has `min..=max` characters and no NUL, else a validation
/// error naming `field`.
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

/// A title: 1 to [`MAX_TITLE`] characters, not all blank.
pub(crate) fn validate_title(title: &str) -> Result<()> {
    check_len("title", title, 1, MAX_TITLE)?;
    if title.trim().is_empty() {
        return Err(Error::validation("title", "expected some non-blank text"));
    }
    Ok(())
}

/// A name (of a service or an integration) as stored: trimmed, 1 to
/// [`MAX_NAME`] characters, naming `field`.
pub(crate) fn validate_name(field: &str, name: &str) -> Result<String> {
    let name = name.trim();
    check_len(field, name, 1, MAX_NAME)?;
    Ok(name.to_string())
}

/// A registration as stored: name and username trimmed, the username of
/// letters, digits, `.`, `_` and `-`, the email normalised ([`validate_email`]),
/// the password checked ([`validate_password`]).
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

/// `n` items of `field` within `min..=max`, else a validation error naming
/// it (`what`: what is counted, e.g. `participants`).
pub(crate) fn check_count(field: &str, n: usize, min: usize, max: usize, what: &str) -> Result<()> {
    if n < min || n > max {
        let expected = if min == 0 {
            format!("at most {max} {what}")
        } else {
            format!("{min} to {max} {what}")
        };
        return Err(Error::validation(
            field,
            format!("expected {expected}, got {n}"),
        ));
    }
    Ok(())
}

/// `value` within `min..=max`, else a validation error naming `field`
/// (`unit`: what the number counts, e.g. `minutes`).
pub(crate) fn check_range_u32(
    field: &str,
    value: u32,
    min: u32,
    max: u32,
    unit: &str,
) -> Result<u32> {
    if value < min || value > max {
        return Err(Error::validation(
            field,
            format!("expected {min} to {max} {unit}, got {value}"),
        ));
    }
    Ok(value)
}

/// An instant in the accepted years, seconds and below dropped (rotation
/// handoffs and overrides are whole minutes), naming `field`.
pub(crate) fn whole_minute(field: &str, t: Timestamp) -> Result<Timestamp> {
    let t = check_instant(field, t)?;
    let ms = t.timestamp_millis();
    Ok(from_millis(ms - ms.rem_euclid(60_000)))
}

/// A range `[start, end)` the on-call answers cover: both in the accepted
/// years, `end` after `start` and at most `max_days` after it.
pub(crate) fn check_time_range(start: Timestamp, end: Timestamp, max_days: i64) -> Result<()> {
    check_instant("start", start)?;
    check_instant("end", end)?;
    if end <= start {
        return Err(Error::validation("end", messages::RANGE_EMPTY));
    }
    if end - start > chrono::TimeDelta::days(max_days) {
        return Err(Error::validation("end", messages::range_too_long(max_days)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::Validation { field, .. }) => field.to_string(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes_and_refuse_nul() {
        assert!(check_len("name", "ééé", 3, 3).is_ok());
        assert_eq!(field_of(check_len("name", "éé", 3, 3)), "name");
        assert_eq!(field_of(check_len("name", "abcd", 0, 3)), "name");
        assert_eq!(field_of(check_len("bio", "a\0b", 0, 10)), "bio");
    }

    #[test]
    fn a_title_is_not_blank() {
        assert!(validate_title("Disk full").is_ok());
        assert_eq!(field_of(validate_title("   ")), "title");
        assert_eq!(field_of(validate_title("")), "title");
        assert_eq!(
            field_of(validate_title(&"x".repeat(MAX_TITLE + 1))),
            "title"
        );
    }

    #[test]
    fn a_registration_is_trimmed_and_its_username_restricted() {
        let input = NewUser {
            name: "  Ada Lovelace ".into(),
            username: " ada.l ".into(),
            email: " Ada@Example.COM ".into(),
            password: "a long unusual passphrase".into(),
        };
        let u = validate_new_user(&input).expect("valid");
        assert_eq!(
            (u.name.as_str(), u.username.as_str(), u.email.as_str()),
            ("Ada Lovelace", "ada.l", "ada@example.com")
        );
        let spaced = NewUser {
            username: "ada l".into(),
            ..input.clone()
        };
        assert_eq!(field_of(validate_new_user(&spaced)), "username");
        let short = NewUser {
            username: "ad".into(),
            ..input
        };
        assert_eq!(field_of(validate_new_user(&short)), "username");
    }

    #[test]
    fn an_email_is_one_address_with_a_dotted_domain() {
        assert_eq!(
            validate_email(" Ada@Example.com ").expect("valid"),
            "ada@example.com"
        );
        assert!(validate_email("ada@[192.0.2.1]").is_ok());
        assert_eq!(field_of(validate_email("ada@localhost")), "email");
        assert_eq!(field_of(validate_email("Ada <ada@example.com>")), "email");
        assert_eq!(field_of(validate_email("a@b.c, d@e.f")), "email");
    }

    #[test]
    fn whole_minutes_and_ranges() {
        let t = from_millis(1_767_225_659_999);
        assert_eq!(
            whole_minute("start", t).expect("valid").timestamp_millis(),
            1_767_225_600_000
        );
        assert_eq!(
            whole_minute("start", from_millis(-1))
                .expect("valid")
                .timestamp_millis(),
            -60_000,
            "before the epoch, down to the minute too"
        );
        let day = 86_400_000;
        assert!(check_time_range(t, from_millis(t.timestamp_millis() + 90 * day), 90).is_ok());
        assert_eq!(
            field_of(check_time_range(
                t,
                from_millis(t.timestamp_millis() + 90 * day + 1),
                90
            )),
            "end"
        );
        assert_eq!(field_of(check_time_range(t, t, 90)), "end");
        assert_eq!(
            field_of(check_time_range(from_millis(i64::MIN / 2), t, 90)),
            "start"
        );
        assert_eq!(
            field_of(check_count("rules", 101, 0, 100, "rules")),
            "rules"
        );
        assert_eq!(
            field_of(check_range_u32("repeat", 6, 0, 5, "repeats")),
            "repeat"
        );
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        assert!(validate_password("a long unusual passphrase").is_ok());
        assert_eq!(field_of(validate_password("password")), "password");
        assert_eq!(field_of(validate_password("PASSWORD1")), "password");
        assert_eq!(field_of(validate_password("short")), "password");
    }
}
