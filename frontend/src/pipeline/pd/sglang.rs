//! SGLang's disaggregation protocol (its PD router and mini load balancer): the request goes
//! to the prefill and the decode instance at the same time, both carrying
//! `bootstrap_host` (the prefill instance's host), `bootstrap_port` (its
//! `--disaggregation-bootstrap-port`) and `bootstrap_room` (a fresh random integer in
//! `0..2^63`, the rendezvous id both sides share). The decode instance waits for the prefill
//! of that room, receives the KV cache and streams the answer; the prefill's own answer is
//! read and checked, not relayed.

use bytes::Bytes;

use super::body::Fields;

/// A fresh rendezvous id, as SGLang draws it: uniform in `0..=2^63-1`.
pub fn new_room() -> u64 {
    rand::random::<u64>() >> 1
}

/// The body both instances get.
pub fn with_bootstrap(raw: &[u8], host: &str, port: u16, room: u64) -> Option<Bytes> {
    let mut fields = Fields::parse(raw)?;
    fields.set("bootstrap_host", host)?;
    fields.set("bootstrap_port", port)?;
    fields.set("bootstrap_room", room)?;
    fields.to_bytes()
}

/// The host part of a worker's base URL (IPv6 addresses keep their brackets).
pub fn host_of(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    uri.host().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn both_sides_get_the_prefills_address_and_one_room() {
        let raw =
            br#"{"model":"m","prompt":"p","stream":true,"x_big":123456789012345678901234567890}"#;
        let out = with_bootstrap(raw, "10.0.0.9", 8998, (1 << 63) - 1).unwrap();
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .contains(r#""x_big":123456789012345678901234567890"#));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["bootstrap_host"], "10.0.0.9");
        assert_eq!(v["bootstrap_port"], 8998);
        assert_eq!(v["bootstrap_room"].as_u64(), Some((1 << 63) - 1));
        assert_eq!(v["stream"], true);
        for _ in 0..100 {
            assert!(new_room() < 1 << 63);
        }
        assert_eq!(host_of("http://10.0.0.9:8000").as_deref(), Some("10.0.0.9"));
        assert_eq!(host_of("http://[::1]:8000").as_deref(), Some("[::1]"));
    }
}
