//! The four shapes of `prompt` (completions) and `input` (embeddings): a string, strings,
//! token ids, or batches of token ids.
//!
//! Decided by the JSON tokens as they stream past. `#[serde(untagged)]` would first buffer
//! the whole value into serde's internal content tree (tens of bytes per token id) and then
//! try each variant in turn.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

/// One of the four shapes; converted into `Prompt` or `EmbeddingInput`.
pub(crate) enum TextOrTokens {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
}

/// The first element of an array, which fixes the shape of the rest.
enum First {
    Text(String),
    Token(u32),
    Batch(Vec<u32>),
}

impl<'de> Deserialize<'de> for TextOrTokens {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = TextOrTokens;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a string, an array of strings, an array of token ids or an array of token-id arrays",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(TextOrTokens::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(TextOrTokens::Text(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let hint = seq.size_hint().unwrap_or(0).min(4096);
        Ok(match seq.next_element::<First>()? {
            // An empty array was an empty batch of strings (the first untagged variant).
            None => TextOrTokens::Texts(Vec::new()),
            Some(First::Text(t)) => TextOrTokens::Texts(rest(t, hint, &mut seq)?),
            Some(First::Token(t)) => TextOrTokens::Tokens(rest(t, hint, &mut seq)?),
            Some(First::Batch(b)) => TextOrTokens::TokenBatches(rest(b, hint, &mut seq)?),
        })
    }
}

/// `first` followed by the remaining elements, each of the same type.
fn rest<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
    first: T,
    hint: usize,
    seq: &mut A,
) -> Result<Vec<T>, A::Error> {
    let mut out = Vec::with_capacity(hint.max(1));
    out.push(first);
    while let Some(item) = seq.next_element()? {
        out.push(item);
    }
    Ok(out)
}

impl<'de> Deserialize<'de> for First {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FirstVisitor;
        impl<'de> Visitor<'de> for FirstVisitor {
            type Value = First;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a token id or an array of token ids")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<First, E> {
                Ok(First::Text(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<First, E> {
                Ok(First::Text(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<First, E> {
                u32::try_from(v)
                    .map(First::Token)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element()? {
                    ids.push(id);
                }
                Ok(First::Batch(ids))
            }
        }
        d.deserialize_any(FirstVisitor)
    }
}
