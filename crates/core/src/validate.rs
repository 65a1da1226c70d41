//! Rules for user input, applied when a domain value is built ("parse, don't validate").

use crate::error::{CoreError, CoreResult};
use crate::model::Metadata;
use time::OffsetDateTime;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A key, user or tenant name: trimmed, 1 to 200 characters, no control characters.
pub fn name(field: &str, raw: &str) -> CoreResult<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(CoreError::invalid(
            field,
            format!("{field} must not be blank"),
        ));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(CoreError::invalid(
            field,
            format!("{field} must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(CoreError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(trimmed.to_string())
}

/// An email address, lower-cased: one `@` with something on both sides, no spaces.
pub fn email(raw: &str) -> CoreResult<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if valid {
        Ok(email)
    } else {
        Err(CoreError::invalid(
            "email",
            format!("'{raw}' is not an email address"),
        ))
    }
}

pub fn password(raw: &str) -> CoreResult<()> {
    if raw.chars().count() < MIN_PASSWORD_CHARS {
        return Err(CoreError::invalid(
            "password",
            format!("password must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if raw.len() > MAX_PASSWORD_BYTES {
        return Err(CoreError::invalid(
            "password",
            format!("password must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Metadata must be a JSON object of bounded size.
pub fn metadata(value: &serde_json::Value) -> CoreResult<Metadata> {
    let serde_json::Value::Object(map) = value else {
        return Err(CoreError::invalid(
            "metadata",
            "metadata must be a JSON object",
        ));
    };
    if value.to_string().len() > MAX_METADATA_BYTES {
        return Err(CoreError::invalid(
            "metadata",
            format!("metadata must be at most {MAX_METADATA_BYTES} bytes of JSON"),
        ));
    }
    Ok(map.clone())
}

/// An expiry must lie in the future, and be a time the store can keep: in UTC, no later
/// than the last second of year 9999 (`9999-12-31T23:59:59-23:59` is in year 10000 in
/// UTC). Answers it in UTC.
pub fn expiry(at: OffsetDateTime, now: OffsetDateTime) -> CoreResult<OffsetDateTime> {
    let at = at
        .checked_to_offset(time::UtcOffset::UTC)
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| {
            CoreError::invalid(
                "expires_at",
                "expires_at must be no later than 9999-12-31T23:59:59Z",
            )
        })?;
    if at <= now {
        return Err(CoreError::invalid(
            "expires_at",
            "expires_at must be in the future",
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert_eq!(name("name", "  ci key ").unwrap(), "ci key");
        assert!(name("name", "   ").is_err());
        assert!(name("name", "a\u{0}b").is_err());
        assert!(name("name", &"x".repeat(201)).is_err());
        assert!(name("name", &"é".repeat(200)).is_ok());
    }

    #[test]
    fn emails() {
        assert_eq!(email(" Nemo@Nautilus.com").unwrap(), "nemo@nautilus.com");
        for bad in ["", "nemo", "@x", "x@", "a b@c", "a@b@c"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiries_are_future_times_the_store_can_keep() {
        use time::macros::datetime;
        let now = datetime!(2026-01-01 0:00 UTC);
        let far = datetime!(9999-12-31 23:59:59 -23:59);
        assert!(expiry(far, now).is_err(), "year 10000 in UTC");
        let last = datetime!(9999-12-31 23:59:59 UTC);
        assert_eq!(expiry(last, now).unwrap(), last);
        let offset = datetime!(2027-01-01 12:00 +02:00);
        assert_eq!(
            expiry(offset, now).unwrap(),
            datetime!(2027-01-01 10:00 UTC)
        );
        assert!(expiry(now, now).is_err(), "not in the future");
    }

    #[test]
    fn metadata_is_a_bounded_object() {
        assert!(metadata(&json!({"team": "billing"})).is_ok());
        assert!(metadata(&json!([1])).is_err());
        assert!(metadata(&json!({"x": "y".repeat(9000)})).is_err());
    }
}
