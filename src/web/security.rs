//! Cross-site request protection and security headers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::views::ErrorPage;

/// Whether a request may change state, by the Fetch Metadata + Origin rule (as Go 1.25's
/// CrossOriginProtection): `Sec-Fetch-Site` of `same-origin` or `none` passes and any other value
/// is refused; without it, an `Origin` other than ours is refused; with neither (not a browser),
/// it passes.
pub fn is_cross_site(method: &Method, headers: &HeaderMap, public_origin: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    match headers.get("origin").and_then(|o| o.to_str().ok()) {
        Some(origin) => !origin.eq_ignore_ascii_case(public_origin),
        None => false,
    }
}

/// True when a request was sent by another site (`Sec-Fetch-Site` other than `same-origin` or
/// `none`), whatever its method: such a request, even a `GET` navigation, changes nothing.
pub fn from_another_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|site| !matches!(site.as_bytes(), b"same-origin" | b"none"))
}

/// Middleware: refuses cross-site state changes with 403 before any handler runs.
pub async fn cross_origin_guard(
    State(public_origin): State<std::sync::Arc<str>>,
    req: Request,
    next: Next,
) -> Response {
    if is_cross_site(req.method(), req.headers(), &public_origin) {
        tracing::warn!(path = %req.uri().path(), "refused a cross-site request");
        return ErrorPage::new(
            "Request refused",
            "This request came from another site, so it was refused. Go back, reload the page and try again.".into(),
        )
        .into_response_with(StatusCode::FORBIDDEN);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().expect("a valid header value"));
        }
        m
    }

    #[test]
    fn the_cross_origin_rule() {
        let o = "https://chat.example";
        let post = Method::POST;
        assert!(!is_cross_site(
            &post,
            &h(&[("sec-fetch-site", "same-origin")]),
            o
        ));
        assert!(!is_cross_site(&post, &h(&[("sec-fetch-site", "none")]), o));
        assert!(is_cross_site(
            &post,
            &h(&[("sec-fetch-site", "cross-site")]),
            o
        ));
        assert!(is_cross_site(
            &post,
            &h(&[("sec-fetch-site", "same-site")]),
            o
        ));
        assert!(is_cross_site(
            &post,
            &h(&[("origin", "https://evil.example")]),
            o
        ));
        assert!(!is_cross_site(
            &post,
            &h(&[("origin", "https://chat.example")]),
            o
        ));
        assert!(!is_cross_site(&post, &h(&[]), o));
        assert!(!is_cross_site(
            &Method::GET,
            &h(&[("sec-fetch-site", "cross-site")]),
            o
        ));
    }

    #[test]
    fn requests_from_another_site_are_recognised_whatever_the_method() {
        assert!(from_another_site(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(from_another_site(&h(&[("sec-fetch-site", "same-site")])));
        assert!(!from_another_site(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(!from_another_site(&h(&[("sec-fetch-site", "none")])));
        assert!(!from_another_site(&h(&[])));
    }
}
