//! NATS URLs may carry credentials (`nats://user:password@host`, `nats://token@host`); this
//! is the one place that turns such a URL into something safe to log or report.

/// `url` (or a comma-separated server list) with any `userinfo@` replaced by `***@`.
pub fn redact_url(url: &str) -> String {
    url.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

fn redact_one(server: &str) -> String {
    let (scheme, rest) = match server.find("://") {
        Some(i) => server.split_at(i + 3),
        None => ("", server),
    };
    // The authority ends at the first `/`, `?` or `#`; userinfo is everything before its
    // last `@` (a password may itself contain `@`).
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rfind('@') {
        Some(at) => format!("{scheme}***{}{tail}", &authority[at..]),
        None => server.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_and_the_rest_kept() {
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact_url("nats://u:p@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("tls://s3cr3t-token@h"), "tls://***@h");
        assert_eq!(redact_url("u:p@w@h:1/x"), "***@h:1/x");
        assert_eq!(
            redact_url("nats://a:b@h1:1,nats://h2:2,c:d@h3"),
            "nats://***@h1:1,nats://h2:2,***@h3"
        );
        assert_eq!(redact_url("nats://h/p@q"), "nats://h/p@q");
    }
}
