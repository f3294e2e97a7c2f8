//! Pure domain types that parse user input: once a value has one of these types it is valid.
//! No axum, sqlx or askama here.

use std::fmt;

/// Per-field validation messages, shown next to the fields of a re-rendered form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<(&'static str, String)>);

impl FieldErrors {
    /// One error on one field.
    pub fn one(field: &'static str, message: impl Into<String>) -> Self {
        FieldErrors(vec![(field, message.into())])
    }

    /// Adds an error.
    pub fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }

    /// True when there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The message for `field`, if any (templates call this).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    /// All messages, for a summary at the top of a form.
    pub fn messages(&self) -> Vec<&str> {
        self.0.iter().map(|(_, m)| m.as_str()).collect()
    }

    /// Records the error of `r` under nothing and returns the value, so several fields can be
    /// parsed and all their errors shown at once.
    pub fn check<T>(&mut self, r: Result<T, FieldErrors>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.extend(e.0);
                None
            }
        }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages().join("; "))
    }
}

/// A username: 3–32 characters of `a-z 0-9 _`, stored lowercased so uniqueness ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses form input (trimmed, lowercased).
    pub fn parse(field: &'static str, raw: &str) -> Result<Username, FieldErrors> {
        let s = raw.trim().to_ascii_lowercase();
        if s.is_empty() {
            return Err(FieldErrors::one(field, "Enter a username."));
        }
        let len = s.chars().count();
        if !(3..=32).contains(&len) {
            return Err(FieldErrors::one(
                field,
                "A username has 3 to 32 characters.",
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(FieldErrors::one(
                field,
                "A username may contain only letters a–z, digits and _.",
            ));
        }
        Ok(Username(s))
    }

    /// The normalised username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed: 8–1024 characters. `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks the length rules (for new passwords).
    pub fn parse_new(field: &'static str, raw: String) -> Result<Password, FieldErrors> {
        let len = raw.chars().count();
        if len < 8 {
            return Err(FieldErrors::one(
                field,
                "Use a password of at least 8 characters.",
            ));
        }
        if raw.len() > 1024 {
            return Err(FieldErrors::one(
                field,
                "A password may be at most 1024 characters.",
            ));
        }
        Ok(Password(raw))
    }

    /// Accepts any existing password up to the size limit (a login attempt).
    pub fn parse_existing(field: &'static str, raw: String) -> Result<Password, FieldErrors> {
        if raw.is_empty() {
            return Err(FieldErrors::one(field, "Enter your password."));
        }
        if raw.len() > 1024 {
            return Err(FieldErrors::one(field, "That password is too long."));
        }
        Ok(Password(raw))
    }

    /// The secret itself, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(**redacted**)")
    }
}

/// A display name: up to 64 characters, control characters removed; empty means "use the username".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses form input.
    pub fn parse(field: &'static str, raw: &str) -> Result<DisplayName, FieldErrors> {
        let s: String = raw.trim().chars().filter(|c| !c.is_control()).collect();
        if s.chars().count() > 64 {
            return Err(FieldErrors::one(
                field,
                "A display name may be at most 64 characters.",
            ));
        }
        Ok(DisplayName(s))
    }

    /// The name (may be empty).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A group title: 1–100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTitle(String);

impl GroupTitle {
    /// Parses form input.
    pub fn parse(field: &'static str, raw: &str) -> Result<GroupTitle, FieldErrors> {
        let s: String = raw.trim().chars().filter(|c| !c.is_control()).collect();
        if s.is_empty() {
            return Err(FieldErrors::one(field, "Give the group a title."));
        }
        if s.chars().count() > 100 {
            return Err(FieldErrors::one(
                field,
                "A title may be at most 100 characters.",
            ));
        }
        Ok(GroupTitle(s))
    }

    /// The title.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The longest message, in characters.
pub const MESSAGE_MAX_CHARS: usize = 4000;

/// A message body: 1–4000 characters after trimming; line breaks kept (CRLF folded to LF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    /// Parses form input.
    pub fn parse(field: &'static str, raw: &str) -> Result<MessageBody, FieldErrors> {
        let s = raw.replace("\r\n", "\n");
        let s: String = s
            .trim()
            .chars()
            .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
            .collect();
        if s.is_empty() {
            return Err(FieldErrors::one(field, "Write a message first."));
        }
        let n = s.chars().count();
        if n > MESSAGE_MAX_CHARS {
            return Err(FieldErrors::one(
                field,
                format!(
                    "A message may be at most {MESSAGE_MAX_CHARS} characters (this one has {n})."
                ),
            ));
        }
        Ok(MessageBody(s))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-generated id that makes a retried send idempotent: 1–64 of `A-Za-z0-9-_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    /// Parses an optional form field; empty means "none".
    pub fn parse_opt(
        field: &'static str,
        raw: Option<&str>,
    ) -> Result<Option<ClientId>, FieldErrors> {
        let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if s.len() > 64
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(FieldErrors::one(field, "Invalid client id."));
        }
        Ok(Some(ClientId(s.to_owned())))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses a positive id from a form field.
pub fn parse_id(field: &'static str, raw: &str) -> Result<i64, FieldErrors> {
    match raw.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(FieldErrors::one(field, "Invalid id.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(Username::parse("u", " Ann_1 ").unwrap().as_str(), "ann_1");
        assert!(Username::parse("u", "ab").is_err());
        assert!(Username::parse("u", &"a".repeat(33)).is_err());
        assert!(Username::parse("u", "ann-b").is_err());
        assert!(Username::parse("u", "änn").is_err());
        assert!(Username::parse("u", "").is_err());
    }

    #[test]
    fn passwords_have_bounds_and_hide_in_debug() {
        assert!(Password::parse_new("p", "short".into()).is_err());
        assert!(Password::parse_new("p", "x".repeat(1025)).is_err());
        let p = Password::parse_new("p", "long enough".into()).unwrap();
        assert!(!format!("{p:?}").contains("long"));
    }

    #[test]
    fn message_bodies_trim_keep_newlines_and_cap_length() {
        assert_eq!(
            MessageBody::parse("b", "  hi\r\nthere \n")
                .unwrap()
                .as_str(),
            "hi\nthere"
        );
        assert!(MessageBody::parse("b", "   \n ").is_err());
        assert!(MessageBody::parse("b", &"é".repeat(4000)).is_ok());
        assert!(MessageBody::parse("b", &"é".repeat(4001)).is_err());
    }

    #[test]
    fn titles_and_client_ids() {
        assert!(GroupTitle::parse("t", "  ").is_err());
        assert!(GroupTitle::parse("t", &"x".repeat(101)).is_err());
        assert_eq!(GroupTitle::parse("t", " Team ").unwrap().as_str(), "Team");
        assert_eq!(ClientId::parse_opt("c", Some("")).unwrap(), None);
        assert!(ClientId::parse_opt("c", Some("a b")).is_err());
        assert!(
            ClientId::parse_opt("c", Some("abc-123_X"))
                .unwrap()
                .is_some()
        );
    }
}
