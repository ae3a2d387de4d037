//! The routing console: `GET /console`, one HTML page built into the binary, and the
//! decision feed it reads, `GET /admin/decisions/stream` (server-sent events).
//!
//! The page itself holds no data and no secret, so it is served without the admin token;
//! everything it shows comes from the token-protected admin JSON (`/admin/instances`,
//! `/admin/plugins`) and the feed, which it fetches with `Authorization: Bearer <token>`.
//! The token comes from the URL fragment (`/console#token=…`, which browsers never send to
//! the server, so it cannot reach an access log) or from a form on the page, and is kept in
//! the tab's `sessionStorage` only.

pub mod feed;

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::Body;

/// The page: plain HTML, CSS and JavaScript, no build step.
const PAGE: &str = include_str!("console.html");

/// `GET /console`.
pub fn page() -> Response<Body> {
    let mut response = Response::new(Body::full(PAGE));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        // Inline script and style only, and requests to this origin: data from discovery
        // (instance names, labels) cannot load or run anything even if the page had a bug.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_locked_down() {
        let response = page();
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
        // No external resource, and the token is never put in a URL the page requests.
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
        assert!(PAGE.contains("Authorization"));
        assert!(!PAGE.contains("?token="));
    }
}
