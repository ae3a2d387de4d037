//! Unknown fields of a request, kept as raw JSON text.
//!
//! Requests are forwarded with fields Switchyard does not know, so those fields must be kept
//! — but a client controls their size. Kept as `serde_json::Value` a 16 MiB `"x":[0,0,…]`
//! becomes 8 M `Value::Number`s (~256 MiB), and `#[serde(flatten)]` first buffers the whole
//! object into serde's internal content tree on top of that. Kept as [`RawValue`] the field
//! costs its own bytes once. The request types therefore deserialize through
//! [`raw_extra_struct!`], a plain map visitor without `flatten`, and serialize the raw text
//! back verbatim.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use serde::Serialize;
use serde_json::value::RawValue;

/// Unknown JSON fields of a request, by name (sorted, like `serde_json::Map`), as raw text.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct RawExtra(BTreeMap<String, Box<RawValue>>);

impl RawExtra {
    pub fn new() -> Self {
        Self::default()
    }

    /// The field parsed as a `Value`, when its text is at most `max_len` bytes. For looking
    /// at small, known fields (`echo`, `best_of`) without building a tree of a huge one.
    pub fn small_value(&self, key: &str, max_len: usize) -> Option<serde_json::Value> {
        let raw = self.0.get(key)?;
        if raw.get().len() > max_len {
            return None;
        }
        serde_json::from_str(raw.get()).ok()
    }
}

impl Deref for RawExtra {
    type Target = BTreeMap<String, Box<RawValue>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for RawExtra {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Equal when the same names carry the same text.
impl PartialEq for RawExtra {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((ka, va), (kb, vb))| ka == kb && va.get() == vb.get())
    }
}

/// Nesting allowed inside one raw value. serde_json refuses input nested deeper than 128
/// when it builds values, but skips that check when it only captures a raw slice; without
/// this, a request Switchyard used to refuse (400) would be forwarded to a worker.
pub(crate) const MAX_RAW_DEPTH: usize = 127;

/// Fails when `raw` nests arrays/objects deeper than [`MAX_RAW_DEPTH`]. One pass over the
/// bytes; brackets inside strings do not count.
pub(crate) fn check_depth<E: serde::de::Error>(raw: &RawValue) -> Result<(), E> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in raw.get().as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_RAW_DEPTH {
                    return Err(E::custom("recursion limit exceeded"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Implements `Deserialize` for a struct whose unknown fields go to `extra: RawExtra`.
///
/// `required` fields must be present; `optional` fields are `Option<T>` (absent or `null`
/// is `None`). A repeated known field is an error, as with derived impls; a repeated
/// unknown field keeps its last value, as `flatten` into a map did.
macro_rules! raw_extra_struct {
    (
        $ty:ident, $expecting:literal,
        required { $($req:ident : $rty:ty),* $(,)? },
        optional { $($opt:ident : $oty:ty),* $(,)? }
    ) => {
        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct FieldsVisitor;
                impl<'de> ::serde::de::Visitor<'de> for FieldsVisitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_map<A: ::serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        use ::serde::de::Error as _;
                        $(let mut $req: Option<$rty> = None;)*
                        $(let mut $opt: Option<Option<$oty>> = None;)*
                        let mut extra = $crate::RawExtra::new();
                        while let Some(key) = map.next_key::<String>()? {
                            match key.as_str() {
                                $(stringify!($req) => {
                                    if $req.is_some() {
                                        return Err(A::Error::duplicate_field(stringify!($req)));
                                    }
                                    $req = Some(map.next_value()?);
                                })*
                                $(stringify!($opt) => {
                                    if $opt.is_some() {
                                        return Err(A::Error::duplicate_field(stringify!($opt)));
                                    }
                                    $opt = Some(map.next_value()?);
                                })*
                                _ => {
                                    let value: Box<::serde_json::value::RawValue> =
                                        map.next_value()?;
                                    $crate::raw_extra::check_depth::<A::Error>(&value)?;
                                    extra.insert(key, value);
                                }
                            }
                        }
                        Ok($ty {
                            $($req: $req.ok_or_else(|| A::Error::missing_field(stringify!($req)))?,)*
                            $($opt: $opt.flatten(),)*
                            extra,
                        })
                    }
                }
                d.deserialize_map(FieldsVisitor)
            }
        }
    };
}

pub(crate) use raw_extra_struct;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize)]
    struct Sample {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        count: Option<u32>,
        #[serde(flatten)]
        extra: RawExtra,
    }

    raw_extra_struct!(
        Sample,
        "a sample",
        required { name: String },
        optional { count: u32 }
    );

    #[test]
    fn unknown_fields_keep_their_exact_text_and_serialize_back_verbatim() {
        let body = r#"{"name":"n","x_big":123456789012345678901234567890,"x_f":0.1000000000000000055511151231257827,"x_obj":{"b":[1, 2],"a":null},"count":null}"#;
        let s: Sample = serde_json::from_str(body).unwrap();
        assert_eq!((s.name.as_str(), s.count), ("n", None));
        assert_eq!(s.extra["x_big"].get(), "123456789012345678901234567890");
        assert_eq!(s.extra["x_obj"].get(), r#"{"b":[1, 2],"a":null}"#);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"name":"n","x_big":123456789012345678901234567890,"x_f":0.1000000000000000055511151231257827,"x_obj":{"b":[1, 2],"a":null}}"#
        );
    }

    #[test]
    fn missing_duplicate_and_ill_typed_fields_are_errors() {
        let err = |body: &str| {
            serde_json::from_str::<Sample>(body)
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"count":1}"#).contains("missing field `name`"));
        assert!(err(r#"{"name":"a","name":"b"}"#).contains("duplicate field `name`"));
        assert!(err(r#"{"name":"a","count":"x"}"#).contains("invalid type"));
        assert!(err(r#"["a",1]"#).contains("a sample"));
        assert!(err(r#"{"name":"a","x":[1,}"#).contains("expected value"));
    }

    #[test]
    fn a_huge_unknown_field_is_one_string_not_a_tree() {
        let zeros = vec!["0"; 200_000].join(",");
        let body = format!(r#"{{"name":"n","x":[{zeros}]}}"#);
        let s: Sample = serde_json::from_str(&body).unwrap();
        // The raw slice is exactly the field's bytes (a Value tree would be ~16x larger).
        assert_eq!(s.extra["x"].get().len(), zeros.len() + 2);
    }

    #[test]
    fn nesting_deeper_than_serde_json_allows_is_refused_but_brackets_in_strings_do_not_count() {
        let deep = |n: usize| format!(r#"{{"name":"n","x":{}{}}}"#, "[".repeat(n), "]".repeat(n));
        assert!(serde_json::from_str::<Sample>(&deep(MAX_RAW_DEPTH)).is_ok());
        let err = serde_json::from_str::<Sample>(&deep(100_000)).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
        let body = format!(
            r#"{{"name":"n","x":["{}\"{}"]}}"#,
            "[".repeat(500),
            "{".repeat(500)
        );
        assert!(serde_json::from_str::<Sample>(&body).is_ok());
    }

    #[test]
    fn repeated_unknown_fields_keep_the_last_and_small_values_parse() {
        let s: Sample = serde_json::from_str(r#"{"name":"n","e":1,"e":true}"#).unwrap();
        assert_eq!(
            s.extra.small_value("e", 16),
            Some(serde_json::Value::Bool(true))
        );
        assert_eq!(s.extra.small_value("e", 2), None);
        assert_eq!(s.extra.small_value("missing", 16), None);
    }

    #[test]
    fn errors_name_the_path_through_serde_path_to_error() {
        let body = r#"{"name":"n","x":{"deep":[1,2]},"count":"ten"}"#;
        let mut de = serde_json::Deserializer::from_str(body);
        let err = serde_path_to_error::deserialize::<_, Sample>(&mut de).unwrap_err();
        assert_eq!(err.path().to_string(), "count");
    }
}
