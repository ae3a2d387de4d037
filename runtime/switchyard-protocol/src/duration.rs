//! The one duration format of the product: config files, flags and plugin limits all write
//! `120s`, `500ms`, `2m`, `1h30m` (humantime's spelling: whole numbers, each with a unit, no
//! spaces). A bare number is refused: whether `30` meant seconds or milliseconds is exactly
//! the question two older parsers answered differently.
//!
//! [`millis`] and [`secs`] are serde adapters for fields that keep their value as an integer
//! (`u64` milliseconds or seconds) internally; [`serde_str`] is the adapter for `Duration`.

use std::time::Duration;

/// What an error shows as the accepted form.
pub const ACCEPTED: &str =
    "a number with a unit: `500ms`, `30s`, `2m`, `1h` (units ns, us, ms, s, m, h)";

/// Parses `500ms`, `2s`, `1m30s`. Refuses bare numbers, fractions, signs and unknown units.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty duration: write {ACCEPTED}"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` has no unit: write {ACCEPTED}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("`{text}` is not a duration: write {ACCEPTED}"));
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is out of range"))?;
        let part = match unit {
            "ns" => Some(Duration::from_nanos(n)),
            "us" | "µs" => Some(Duration::from_micros(n)),
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            other => {
                return Err(format!(
                    "`{text}`: unknown unit `{other}`; write {ACCEPTED}"
                ))
            }
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| format!("`{text}` is out of range"))?;
        rest = tail;
    }
    Ok(total)
}

/// The shortest exact spelling of `d` in the format [`parse`] reads.
pub fn format(d: Duration) -> String {
    let ns = d.as_nanos();
    for (unit, size) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if ns != 0 && ns.is_multiple_of(size) {
            return format!("{}{unit}", ns / size);
        }
    }
    if ns == 0 {
        return "0s".into();
    }
    format!("{ns}ns")
}

/// What the serde adapters accept: a string, or (to name the mistake) anything else.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Number(serde_json::Number),
}

fn read<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    use serde::de::Error as _;
    match <Raw as serde::Deserialize>::deserialize(d) {
        Ok(Raw::Text(text)) => parse(&text).map_err(D::Error::custom),
        Ok(Raw::Number(n)) => Err(D::Error::custom(format!(
            "`{n}` has no unit: write {ACCEPTED}"
        ))),
        Err(_) => Err(D::Error::custom(format!("expected {ACCEPTED}"))),
    }
}

/// Serde adapter for `Duration` fields.
pub mod serde_str {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::read(d)
    }
}

/// Serde adapter for `u64` millisecond fields written as durations.
pub mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(Duration::from_millis(*ms)))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        use serde::de::Error as _;
        let d = super::read(d)?;
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(D::Error::custom(format!(
                "`{}` is finer than the whole milliseconds this setting takes",
                super::format(d)
            )));
        }
        u64::try_from(d.as_millis()).map_err(|_| D::Error::custom("duration out of range"))
    }
}

/// Serde adapter for `u64` whole-second fields written as durations.
pub mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(secs: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(Duration::from_secs(*secs)))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        use serde::de::Error as _;
        let d = super::read(d)?;
        if d.subsec_nanos() != 0 {
            return Err(D::Error::custom(format!(
                "`{}` is finer than the whole seconds this setting takes",
                super::format(d)
            )));
        }
        Ok(d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        for (text, want) in [
            ("500ms", Duration::from_millis(500)),
            ("120s", Duration::from_secs(120)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            (" 3s ", Duration::from_secs(3)),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
            assert_eq!(parse(&format(want)), Ok(want), "round trip of {text}");
        }
    }

    #[test]
    fn bare_numbers_are_refused_with_the_accepted_form() {
        for bare in ["30", "0", "120000"] {
            let err = parse(bare).unwrap_err();
            assert!(
                err.contains("has no unit") && err.contains("500ms"),
                "{err}"
            );
        }
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "",
            "s",
            "1.5s",
            "-1s",
            "2 s",
            "3d",
            "1e3ms",
            "ms500",
            "99999999999999999999h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn serde_adapters_refuse_numbers_and_sub_unit_values() {
        #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
        struct T {
            #[serde(with = "millis")]
            ms: u64,
            #[serde(with = "secs")]
            s: u64,
            #[serde(with = "serde_str")]
            d: Duration,
        }
        let t: T = serde_json::from_str(r#"{"ms":"2s","s":"1m","d":"5ms"}"#).unwrap();
        assert_eq!(
            t,
            T {
                ms: 2000,
                s: 60,
                d: Duration::from_millis(5)
            }
        );
        let back: T = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        let err = serde_json::from_str::<T>(r#"{"ms":2000,"s":"1m","d":"5ms"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`2000` has no unit"), "{err}");
        assert!(serde_json::from_str::<T>(r#"{"ms":"1us","s":"1m","d":"5ms"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"ms":"1s","s":"1500ms","d":"5ms"}"#).is_err());
    }
}
