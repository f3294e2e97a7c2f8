//! Web Push: the server's VAPID key pair, what a subscription must look like, and the payload a
//! message becomes. The sender that takes messages from the log and pushes them off the request
//! path is in [`sender`].
//!
//! Encryption (RFC 8291, `aes128gcm`) and the VAPID header (RFC 8292) come from the
//! `web-push-native` crate (pure Rust: p256, aes-gcm, hkdf, jwt-simple), so nothing here does
//! cryptography by hand and the binary needs no OpenSSL.

pub mod sender;

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Serialize;
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256KeyPair};

use crate::db::{self, Db};
use crate::domain::FieldErrors;
use crate::events::MessageData;

/// Devices (browsers) one user may have push on at once.
pub const MAX_DEVICES: i64 = 10;
/// The longest endpoint accepted (real ones are a few hundred characters).
const MAX_ENDPOINT: usize = 1024;
/// Characters of a message shown in a notification.
const BODY_CHARS: usize = 160;

/// The server's VAPID identity, loaded (or made) at start.
pub struct Vapid {
    key: ES256KeyPair,
    /// The public key as browsers take it (`applicationServerKey`): the uncompressed point,
    /// base64url.
    pub public_key: String,
    /// Who runs this server (the JWT's `sub`): a `mailto:` or `https:` URL.
    pub contact: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl Vapid {
    /// The key pair stored in the database; the first node to start makes it. Every node inserts
    /// a fresh pair only if none is there and then reads the one stored, so racing nodes agree.
    pub async fn load_or_create(db: &Db, contact: String) -> anyhow::Result<Vapid> {
        let fresh = ES256KeyPair::generate();
        let private = Base64UrlUnpadded::encode_string(&fresh.to_bytes());
        let public = public_of(&fresh);
        let mut tx = db.begin().await?;
        db::push::insert_keys_if_absent(&mut tx.conn(), &private, &public, db::now_ms()).await?;
        let (private, public) = db::push::keys(&mut tx.conn())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the VAPID key row vanished"))?;
        tx.commit().await?;
        let raw = Base64UrlUnpadded::decode_vec(&private)
            .map_err(|e| anyhow::anyhow!("stored VAPID key: {e}"))?;
        let key =
            ES256KeyPair::from_bytes(&raw).map_err(|e| anyhow::anyhow!("stored VAPID key: {e}"))?;
        if public_of(&key) != public {
            anyhow::bail!("the stored VAPID public key does not match its private key");
        }
        Ok(Vapid {
            key,
            public_key: public,
            contact,
        })
    }

    /// The key pair, for signing.
    pub fn key(&self) -> &ES256KeyPair {
        &self.key
    }
}

fn public_of(key: &ES256KeyPair) -> String {
    Base64UrlUnpadded::encode_string(&key.public_key().public_key().to_bytes_uncompressed())
}

/// A subscription as a browser's `PushSubscription` gives it, checked.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// The push service's URL for the browser.
    pub endpoint: String,
    /// The browser's P-256 public key, base64url without padding.
    pub p256dh: String,
    /// The browser's auth secret, base64url without padding.
    pub auth: String,
}

fn decode(field: &str) -> Option<Vec<u8>> {
    Base64UrlUnpadded::decode_vec(field.trim().trim_end_matches('=')).ok()
}

/// Whether `endpoint` may be pushed to: https to a host name on the default port (push services
/// are public web services; an IP address or another port would let a user aim the server's
/// requests at internal machines). Plain http only to 127.0.0.1 and only when `allow_insecure`
/// (the test push service).
pub fn endpoint_ok(endpoint: &str, allow_insecure: bool) -> bool {
    let Ok(uri) = endpoint.parse::<axum::http::Uri>() else {
        return false;
    };
    let host = uri.host().unwrap_or("");
    match uri.scheme_str() {
        Some("https") => {
            let name = host.trim_start_matches('[').trim_end_matches(']');
            !host.is_empty()
                && name.parse::<std::net::IpAddr>().is_err()
                && !name.eq_ignore_ascii_case("localhost")
                && !name.to_ascii_lowercase().ends_with(".localhost")
                && uri.port_u16().is_none_or(|p| p == 443)
        }
        Some("http") => allow_insecure && host == "127.0.0.1",
        _ => false,
    }
}

/// True for addresses on the public internet (what a push service resolves to); false for
/// loopback, private, link-local, shared, documentation and other special ranges.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

impl NewSubscription {
    /// Checks the three fields; each problem is a field error.
    pub fn parse(
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        allow_insecure: bool,
    ) -> Result<NewSubscription, FieldErrors> {
        let mut errors = FieldErrors::default();
        let endpoint = endpoint.trim();
        if endpoint.len() > MAX_ENDPOINT || !endpoint_ok(endpoint, allow_insecure) {
            errors.push("endpoint", "The push endpoint must be an https URL.");
        }
        let key = decode(p256dh).filter(|k| {
            k.len() == 65 && web_push_native::p256::PublicKey::from_sec1_bytes(k).is_ok()
        });
        if key.is_none() {
            errors.push(
                "p256dh",
                "The device key must be a P-256 public key (65 bytes, base64url).",
            );
        }
        let secret = decode(auth).filter(|a| a.len() == 16);
        if secret.is_none() {
            errors.push("auth", "The auth secret must be 16 bytes, base64url.");
        }
        match (key, secret) {
            (Some(k), Some(a)) if errors.is_empty() => Ok(NewSubscription {
                endpoint: endpoint.to_owned(),
                p256dh: Base64UrlUnpadded::encode_string(&k),
                auth: Base64UrlUnpadded::encode_string(&a),
            }),
            _ => Err(errors),
        }
    }
}

/// What a notification shows, as the service worker receives it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Payload {
    /// The conversation (direct: the author's name; group: its title).
    pub title: String,
    /// The message as plain text, shortened (in a group, prefixed with the author's name).
    pub body: String,
    /// Where a click leads: the message in its conversation.
    pub url: String,
    /// Notifications with the same tag replace each other: one per conversation.
    pub tag: String,
}

impl Payload {
    /// The notification of `message` in a conversation of `kind` (`direct`/`group`) titled
    /// `title`.
    pub fn of(message: &MessageData, kind: &str, title: Option<&str>) -> Payload {
        let author = message.author.name();
        let mut text = shorten(&crate::views::markup::plain(&message.body), BODY_CHARS);
        if text.is_empty() && !message.attachments.is_empty() {
            // A message of files only.
            text = "📎 Attachment".to_owned();
        }
        let (title, body) = if kind == "direct" {
            (author.to_owned(), text)
        } else {
            (
                title.unwrap_or("Group").to_owned(),
                format!("{author}: {text}"),
            )
        };
        Payload {
            title,
            body,
            url: format!(
                "/conversations/{}#{}",
                message.conversation_id,
                crate::views::dom::message(message.id)
            ),
            tag: crate::views::dom::conversation_row(message.conversation_id),
        }
    }
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

/// A short name for a device, from its User-Agent ("Firefox on Android").
pub fn device_label(user_agent: &str) -> String {
    let ua = user_agent;
    let browser = if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") {
        "Opera"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else {
        "A browser"
    };
    let os = if ua.contains("Android") {
        Some("Android")
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        Some("iOS")
    } else if ua.contains("Windows") {
        Some("Windows")
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        Some("macOS")
    } else if ua.contains("CrOS") {
        Some("ChromeOS")
    } else if ua.contains("Linux") {
        Some("Linux")
    } else {
        None
    };
    match os {
        Some(os) => format!("{browser} on {os}"),
        None => browser.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_unless_the_test_flag_allows_loopback() {
        assert!(endpoint_ok(
            "https://fcm.googleapis.com/fcm/send/abc",
            false
        ));
        assert!(!endpoint_ok("http://push.example.org/x", false));
        assert!(!endpoint_ok("http://127.0.0.1:9/x", false));
        assert!(endpoint_ok("http://127.0.0.1:9/x", true));
        assert!(!endpoint_ok("http://10.0.0.1/x", true));
        assert!(!endpoint_ok("javascript:alert(1)", true));
        assert!(!endpoint_ok("", true));
        assert!(!endpoint_ok("https://10.0.0.1/x", false), "an address");
        assert!(!endpoint_ok("https://[::1]/x", false));
        assert!(!endpoint_ok("https://localhost/x", false));
        assert!(
            !endpoint_ok("https://push.example:8443/x", false),
            "another port"
        );
        assert!(endpoint_ok("https://push.example:443/x", false));
    }

    #[test]
    fn only_public_addresses_are_pushed_to() {
        for ip in [
            "10.1.2.3",
            "127.0.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_public(ip.parse().expect("a valid address")), "{ip}");
        }
        for ip in ["142.250.74.10", "2a00:1450:4001::200e"] {
            assert!(is_public(ip.parse().expect("a valid address")), "{ip}");
        }
    }

    #[test]
    fn keys_must_have_the_right_lengths() {
        let key = ES256KeyPair::generate();
        let p256dh = public_of(&key);
        let auth = Base64UrlUnpadded::encode_string(&[7u8; 16]);
        let ok = NewSubscription::parse("https://push.example/x", &p256dh, &auth, false);
        assert!(ok.is_ok());
        let short = Base64UrlUnpadded::encode_string(&[7u8; 15]);
        let e = NewSubscription::parse("https://push.example/x", &p256dh, &short, false);
        assert!(e.is_err());
        let e = NewSubscription::parse("https://push.example/x", "AAAA", &auth, false);
        assert!(e.is_err());
        // Padding is tolerated.
        let padded = format!("{auth}==");
        assert!(NewSubscription::parse("https://push.example/x", &p256dh, &padded, false).is_ok());
    }

    #[test]
    fn long_text_is_shortened_on_a_character_boundary() {
        assert_eq!(shorten("hello", 10), "hello");
        let s = shorten(&"é".repeat(200), 10);
        assert_eq!(s.chars().count(), 10);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn devices_get_readable_labels() {
        let ff = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0";
        assert_eq!(device_label(ff), "Firefox on Android");
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";
        assert_eq!(device_label(chrome), "Chrome on Linux");
        assert_eq!(device_label(""), "A browser");
    }
}
