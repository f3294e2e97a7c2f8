//! Pure domain types that parse user input: once a value has one of these types it is valid.
//! No axum, sqlx or askama here.

pub mod search;

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};

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

    /// Parses someone else's username as typed to name them: "@cat" is cat, as names are shown.
    pub fn parse_handle(field: &'static str, raw: &str) -> Result<Username, FieldErrors> {
        let s = raw.trim();
        Username::parse(field, s.strip_prefix('@').unwrap_or(s))
    }

    /// The normalised username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed: 8–1024 characters. `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

/// The weakest new password accepted: zxcvbn's score 3, "safely unguessable" (an estimated
/// 10^8 guesses or more, a strong defence against online guessing and a fair one offline).
pub const MIN_PASSWORD_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

impl Password {
    /// Checks a new password: the length rules, then strength. zxcvbn (Dropbox's estimator, with
    /// its lists of common passwords, names and words, keyboard patterns, dates and repeats)
    /// must rate it at least [`MIN_PASSWORD_SCORE`], counting `user_inputs` (the username) as
    /// known to an attacker.
    pub fn parse_new(
        field: &'static str,
        raw: String,
        user_inputs: &[&str],
    ) -> Result<Password, FieldErrors> {
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
        // The estimate's cost grows with length; 100 characters decide it.
        let head: String = raw.chars().take(100).collect();
        let mut inputs = vec!["parley"];
        inputs.extend_from_slice(user_inputs);
        let estimate = zxcvbn::zxcvbn(&head, &inputs);
        if estimate.score() < MIN_PASSWORD_SCORE {
            let why = estimate
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| format!("{w} "))
                .unwrap_or_default();
            return Err(FieldErrors::one(
                field,
                format!(
                    "{why}That password is too easy to guess. Try three or four unrelated words, or a longer phrase."
                ),
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

/// Most combining marks allowed on one character (more only piles marks over neighbouring lines).
const MAX_MARKS: usize = 4;

/// True for characters that must not appear in a name: controls, format characters (bidi
/// overrides, zero-width spaces, invisible operators), line and paragraph separators, private-use
/// and unassigned code points, and characters that render as nothing (Hangul fillers, the braille
/// blank, variation selectors other than the emoji ones). A zero-width joiner is allowed inside an
/// emoji sequence (🏳️‍🌈), where it is drawn as one symbol.
fn invisible_or_control(c: char, prev: Option<char>, next: Option<char>) -> bool {
    if c == '\u{200D}' {
        let emoji_before = prev.is_some_and(|p| {
            !p.is_ascii()
                && (p.is_emoji_char()
                    || p == '\u{FE0F}'
                    || ('\u{1F3FB}'..='\u{1F3FF}').contains(&p))
        });
        let emoji_after = next.is_some_and(|n| !n.is_ascii() && n.is_emoji_char());
        return !(emoji_before && emoji_after);
    }
    if matches!(
        c,
        '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0D}'
            | '\u{FFA0}'
            | '\u{E0100}'..='\u{E01EF}'
    ) {
        return true;
    }
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned
    )
}

/// Normalises a name people will read (a display name, a group title): NFC, every run of
/// whitespace one plain space, trimmed; then refuses invisible and control characters.
fn clean_name(field: &'static str, raw: &str) -> Result<String, FieldErrors> {
    let nfc: String = raw.nfc().collect();
    let mut s = String::with_capacity(nfc.len());
    for word in nfc.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(word);
    }
    let chars: Vec<char> = s.chars().collect();
    let mut marks = 0;
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        if invisible_or_control(c, prev, chars.get(i + 1).copied()) {
            return Err(FieldErrors::one(
                field,
                format!(
                    "Names cannot contain invisible or control characters (such as U+{:04X}). Remove it and try again.",
                    u32::from(c)
                ),
            ));
        }
        marks = match c.general_category() {
            GeneralCategory::NonspacingMark | GeneralCategory::EnclosingMark => marks + 1,
            _ => 0,
        };
        if marks > MAX_MARKS {
            return Err(FieldErrors::one(
                field,
                "Too many accents on one letter. Simplify the name and try again.",
            ));
        }
    }
    Ok(s)
}

/// The keys under which a name is compared with everyone else's: two names are confusable (one
/// could pass for the other) when they share a key. A key is a Unicode TR39 skeleton (from the
/// `unicode-security` tables: Cyrillic а for Latin a, 1 and I for l, rn for m, invisible
/// characters dropped, …) of the name's NFKC form without spaces and without the separators
/// `_`, `-` and `.` (so ann_ passes for ann), lowercased, so case does not tell names apart
/// either. Two keys: one skeletonised before lowercasing (a capital I passing for
/// an l) and one after (ALICE for alice). Empty for an empty name.
pub fn name_keys(name: &str) -> Vec<String> {
    use unicode_security::skeleton;
    let spaced: String = name.nfkc().filter(|c| !c.is_whitespace()).collect();
    let mut base: String = spaced
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .collect();
    if base.is_empty() {
        // A name of separators only ("___") is compared as it is.
        base = spaced;
    }
    if base.is_empty() {
        return Vec::new();
    }
    let first: String = skeleton(&base).collect::<String>().to_lowercase();
    let a: String = skeleton(&first).collect::<String>().to_lowercase();
    let b: String = skeleton(&base.to_lowercase())
        .collect::<String>()
        .to_lowercase();
    let mut keys = vec![a, b];
    keys.sort();
    keys.dedup();
    keys
}

/// Bump when [`name_keys`] (or the Unicode data behind it) changes: stored keys of an older
/// version are recomputed at start.
pub const NAME_KEYS_VERSION: i64 = 2;

/// A display name: up to 64 characters, NFC, single spaces, no invisible or control characters;
/// empty means "use the username". Whether it passes for someone else is checked against the
/// database (see [`name_keys`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses form input.
    pub fn parse(field: &'static str, raw: &str) -> Result<DisplayName, FieldErrors> {
        let s = clean_name(field, raw)?;
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

/// A group title: 1–100 characters, cleaned like a display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTitle(String);

impl GroupTitle {
    /// Parses form input.
    pub fn parse(field: &'static str, raw: &str) -> Result<GroupTitle, FieldErrors> {
        let s = clean_name(field, raw)?;
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
        // Controls go before trimming, or a body of controls around a line break would leave
        // a message of nothing but whitespace.
        let s: String = raw
            .replace("\r\n", "\n")
            .chars()
            .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
            .collect();
        let s = s.trim().to_owned();
        if shows_nothing(&s) {
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

    /// Parses the text of a message that carries files: it may then be empty.
    pub fn parse_with_files(field: &'static str, raw: &str) -> Result<MessageBody, FieldErrors> {
        if shows_nothing(raw) {
            return Ok(MessageBody(String::new()));
        }
        MessageBody::parse(field, raw)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True when text would show as nothing: only whitespace and characters drawn as nothing
/// (zero-width spaces, fillers, controls). Such characters stay inside a message that shows
/// something (a zero-width non-joiner belongs in Persian words, a joiner in emoji).
fn shows_nothing(s: &str) -> bool {
    // Stops at the first visible character, which for almost every message is the first.
    let mut prev = None;
    s.char_indices().all(|(i, c)| {
        let next = s[i + c.len_utf8()..].chars().next();
        let blank = c.is_whitespace() || invisible_or_control(c, prev, next);
        prev = Some(c);
        blank
    })
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
        assert_eq!(
            Username::parse("u", " Ann_1 ")
                .expect("valid test input")
                .as_str(),
            "ann_1"
        );
        assert!(Username::parse("u", "ab").is_err());
        assert!(Username::parse("u", &"a".repeat(33)).is_err());
        assert!(Username::parse("u", "ann-b").is_err());
        assert!(Username::parse("u", "änn").is_err());
        assert!(Username::parse("u", "").is_err());
    }

    #[test]
    fn passwords_have_bounds_and_hide_in_debug() {
        assert!(Password::parse_new("p", "short".into(), &[]).is_err());
        assert!(Password::parse_new("p", "x".repeat(1025), &[]).is_err());
        let p =
            Password::parse_new("p", "kitchen table lamp".into(), &[]).expect("valid test input");
        assert!(!format!("{p:?}").contains("kitchen"));
    }

    #[test]
    fn common_and_guessable_passwords_are_refused_with_a_reason() {
        for weak in [
            "password",
            "password1234",
            "qwertyuiop",
            "11111111",
            "abcdefgh",
            "iloveyou2024",
            "P@ssw0rd!",
        ] {
            let e = Password::parse_new("p", weak.into(), &[]).unwrap_err();
            assert!(e.to_string().contains("too easy to guess"), "{weak}: {e}");
        }
        // The username counts as known.
        assert!(Password::parse_new("p", "annabelle99".into(), &["annabelle"]).is_err());
        for strong in ["correct horse battery", "mellow-otter-42", "Tr0ub4dor&3"] {
            assert!(
                Password::parse_new("p", strong.into(), &["ann"]).is_ok(),
                "{strong}"
            );
        }
    }

    #[test]
    fn names_are_normalised_and_invisible_characters_refused() {
        // NFC: e + combining acute is stored as é; whitespace runs become one space.
        assert_eq!(
            DisplayName::parse("d", " Rene\u{301}\u{3000}\t Lee ")
                .expect("valid test input")
                .as_str(),
            "Ren\u{e9} Lee"
        );
        for bad in [
            "ann\u{202E}eci", // right-to-left override
            "al\u{200B}ice",  // zero-width space
            "a\u{2066}b",     // bidi isolate
            "\u{3164}",       // Hangul filler: looks empty
            "a\u{E000}",      // private use
            "bell\u{7}",      // control
            "a\u{200D}b",     // a joiner outside an emoji sequence
            "tag\u{E0041}",   // tag character
        ] {
            assert!(DisplayName::parse("d", bad).is_err(), "{bad:?}");
            assert!(GroupTitle::parse("t", bad).is_err(), "{bad:?}");
        }
        assert!(DisplayName::parse("d", "x\u{301}\u{301}\u{301}\u{301}\u{301}").is_err());
        // Emoji sequences and ordinary scripts are fine.
        for ok in [
            "🏳️\u{200D}🌈 Pat",
            "Zoë",
            "Łukasz",
            "Анна",
            "李小龙",
            "محمد",
        ] {
            assert!(DisplayName::parse("d", ok).is_ok(), "{ok}");
        }
        assert_eq!(
            DisplayName::parse("d", "   ")
                .expect("valid test input")
                .as_str(),
            ""
        );
    }

    #[test]
    fn look_alike_names_share_a_key() {
        let same = |a: &str, b: &str| {
            let (ka, kb) = (name_keys(a), name_keys(b));
            ka.iter().any(|k| kb.contains(k))
        };
        assert!(same("alice", "alice"));
        assert!(same("alice", "Alice"));
        assert!(same("alice", "ALICE"));
        assert!(same("alice", "\u{430}lice"), "Cyrillic a");
        assert!(same("alice", "AIice"), "capital I for l");
        assert!(same("alice", "a1ice"), "digit 1 for l");
        assert!(same("alice", "al\u{200B}ice"), "zero-width space");
        assert!(same("alice", "ａｌｉｃｅ"), "full-width");
        assert!(same("bob", "b0b"));
        assert!(same("jim", "jirn"));
        assert!(same("Ann Lee", "annlee"));
        assert!(!same("alice", "alicia"));
        assert!(!same("bob", "rob"));
        assert!(name_keys("").is_empty());
    }

    #[test]
    fn message_bodies_trim_keep_newlines_and_cap_length() {
        assert_eq!(
            MessageBody::parse("b", "  hi\r\nthere \n")
                .expect("valid test input")
                .as_str(),
            "hi\nthere"
        );
        assert!(MessageBody::parse("b", "   \n ").is_err());
        assert!(
            MessageBody::parse("b", "\0\n\0").is_err(),
            "found by a property test"
        );
        assert!(MessageBody::parse("b", &"é".repeat(4000)).is_ok());
        assert!(MessageBody::parse("b", &"é".repeat(4001)).is_err());
        // Nothing to see is nothing to send; invisible characters inside a message stay.
        for blank in [
            "\u{200B}\u{200B}",
            " \u{2060} \u{3164}\n\u{FEFF}",
            "\u{200D}",
        ] {
            assert!(MessageBody::parse("b", blank).is_err(), "{blank:?}");
        }
        for kept in ["mi\u{200C}khaham", "🏳️\u{200D}🌈", "a\u{200B}"] {
            assert_eq!(
                MessageBody::parse("b", kept).map(|b| b.as_str().to_owned()),
                Ok(kept.to_owned())
            );
        }
        assert_eq!(
            MessageBody::parse_with_files("b", "\u{200B}").map(|b| b.as_str().to_owned()),
            Ok(String::new())
        );
    }

    #[test]
    fn titles_and_client_ids() {
        assert!(GroupTitle::parse("t", "  ").is_err());
        assert!(GroupTitle::parse("t", &"x".repeat(101)).is_err());
        assert_eq!(
            GroupTitle::parse("t", " Team ")
                .expect("valid test input")
                .as_str(),
            "Team"
        );
        assert_eq!(
            ClientId::parse_opt("c", Some("")).expect("valid test input"),
            None
        );
        assert!(ClientId::parse_opt("c", Some("a b")).is_err());
        assert!(
            ClientId::parse_opt("c", Some("abc-123_X"))
                .expect("valid test input")
                .is_some()
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;
        use unicode_normalization::is_nfc;

        /// Text rich in what breaks naive parsers: line breaks, tabs, invisible and bidi
        /// characters, combining marks, emoji parts, full-width and Cyrillic look-alikes.
        fn hostile_text(max: usize) -> impl Strategy<Value = String> {
            let tricky = prop::sample::select(vec![
                '\r',
                '\n',
                '\t',
                ' ',
                '\u{a0}',
                '\u{3000}',
                '\0',
                '\u{7f}',
                '\u{200b}',
                '\u{200c}',
                '\u{200d}',
                '\u{202e}',
                '\u{2066}',
                '\u{feff}',
                '\u{301}',
                '\u{fe0f}',
                '\u{3164}',
                '\u{e0041}',
                '\u{e000}',
                'a',
                'A',
                'é',
                'ａ',
                '\u{430}',
                '_',
                '-',
                '1',
                '🏳',
                '🌈',
                '\u{1f3fb}',
            ]);
            prop::collection::vec(prop_oneof![tricky, any::<char>()], 0..max)
                .prop_map(String::from_iter)
        }

        fn is_clean_name(s: &str) -> bool {
            let chars: Vec<char> = s.chars().collect();
            is_nfc(s)
                && s.trim() == s
                && !s.contains("  ")
                && !s.chars().any(|c| c.is_whitespace() && c != ' ')
                && chars.iter().enumerate().all(|(i, &c)| {
                    let prev = i.checked_sub(1).map(|j| chars[j]);
                    !invisible_or_control(c, prev, chars.get(i + 1).copied())
                })
        }

        proptest! {
            #[test]
            fn usernames_are_3_to_32_of_a_z_0_9_and_parse_to_themselves(raw in hostile_text(40)) {
                if let Ok(u) = Username::parse("u", &raw) {
                    let s = u.as_str();
                    prop_assert!((3..=32).contains(&s.len()));
                    prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
                    prop_assert_eq!(Username::parse("u", s), Ok(u.clone()));
                }
            }

            #[test]
            fn passwords_keep_their_bounds(raw in hostile_text(40), long in 1000usize..1100) {
                if let Ok(p) = Password::parse_new("p", raw.clone(), &["ann"]) {
                    prop_assert!(p.expose().chars().count() >= 8 && p.expose().len() <= 1024);
                    prop_assert_eq!(p.expose(), raw.as_str());
                }
                prop_assert_eq!(Password::parse_existing("p", raw.clone()).is_ok(), !raw.is_empty());
                let big = "x".repeat(long);
                prop_assert_eq!(Password::parse_existing("p", big.clone()).is_ok(), long <= 1024);
                prop_assert!(long <= 1024 || Password::parse_new("p", big, &[]).is_err());
            }

            #[test]
            fn display_names_are_clean_bounded_and_stable(raw in hostile_text(80)) {
                if let Ok(n) = DisplayName::parse("d", &raw) {
                    prop_assert!(n.as_str().chars().count() <= 64);
                    prop_assert!(is_clean_name(n.as_str()), "{:?}", n);
                    prop_assert_eq!(DisplayName::parse("d", n.as_str()), Ok(n.clone()));
                }
            }

            #[test]
            fn group_titles_are_clean_bounded_and_stable(raw in hostile_text(120)) {
                if let Ok(t) = GroupTitle::parse("t", &raw) {
                    prop_assert!((1..=100).contains(&t.as_str().chars().count()));
                    prop_assert!(is_clean_name(t.as_str()), "{:?}", t);
                    prop_assert_eq!(GroupTitle::parse("t", t.as_str()), Ok(t.clone()));
                }
            }

            #[test]
            fn message_bodies_are_trimmed_bounded_and_stable(raw in hostile_text(64), n in 3990usize..4010) {
                if let Ok(b) = MessageBody::parse("b", &raw) {
                    let s = b.as_str();
                    prop_assert!(!s.is_empty() && s.chars().count() <= MESSAGE_MAX_CHARS);
                    prop_assert_eq!(s.trim(), s);
                    prop_assert!(s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control()));
                    prop_assert_eq!(MessageBody::parse("b", s), Ok(b.clone()));
                }
                prop_assert_eq!(MessageBody::parse("b", &"é".repeat(n)).is_ok(), n <= MESSAGE_MAX_CHARS);
            }

            #[test]
            fn client_ids_and_ids_accept_only_their_alphabet(raw in hostile_text(70), n in any::<i64>()) {
                if let Ok(Some(c)) = ClientId::parse_opt("c", Some(&raw)) {
                    prop_assert!((1..=64).contains(&c.as_str().len()));
                    prop_assert!(c.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                }
                if let Ok(id) = parse_id("i", &raw) {
                    prop_assert!(id > 0);
                }
                prop_assert_eq!(parse_id("i", &n.to_string()).ok(), (n > 0).then_some(n));
            }

            #[test]
            fn name_keys_ignore_case_spacing_and_invisible_characters(
                words in prop::collection::vec("[a-zA-Z]{1,8}", 1..4),
            ) {
                let name = words.join(" ");
                let keys = name_keys(&name);
                prop_assert!(!keys.is_empty());
                let shares = |other: &str| name_keys(other).iter().any(|k| keys.contains(k));
                prop_assert!(shares(&name.to_uppercase()));
                prop_assert!(shares(&name.to_lowercase()));
                prop_assert!(shares(&words.concat()));
                prop_assert!(shares(&words.join("_")));
                let dotted = format!("{name}.");
                prop_assert!(shares(&dotted));
                let hidden = format!("\u{200b}{name}\u{feff}");
                prop_assert!(shares(&hidden));
            }

            #[test]
            fn name_keys_never_panic(raw in hostile_text(80)) {
                let _ = name_keys(&raw);
            }
        }
    }
}
