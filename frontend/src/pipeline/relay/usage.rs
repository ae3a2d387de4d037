//! Usage in a relayed chat stream: the worker's `usage` reports read on the way (and, after a
//! migration, rewritten to count the whole spliced stream), the usage-only chunk dropped when
//! the client did not ask for it, and a token count for engines that report no usage.
//!
//! The common chunk pays one byte search for `"usage"`; only chunks that carry it are parsed.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use switchyard_protocol::Usage;

use super::super::migrate::Migration;

#[derive(Deserialize)]
struct UsageProbe {
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
}

/// What a chunk is, as far as usage goes.
#[derive(Debug, PartialEq)]
pub(super) enum Spliced {
    /// No (readable) `usage`: a content chunk like any other.
    Plain(Bytes),
    /// A usage-only chunk (`choices: []`): sent, as these bytes, only if the client asked.
    UsageOnly(Option<Bytes>),
    /// A content chunk that also reports usage (`continuous_usage_stats`): `data` is what the
    /// worker sent (what migration remembers), `send` the same chunk showing the whole spliced
    /// stream's count, when it differs.
    Content { data: Bytes, send: Option<Bytes> },
}

/// The stream's usage so far.
#[derive(Debug)]
pub(super) struct UsageCount {
    client_wants_usage: bool,
    /// The last usage the workers reported (for the whole stream, after a migration).
    reported: Option<Usage>,
    /// Content events relayed.
    tokens: u32,
    /// Events that carried no generated text (the opening role chunk, the closing
    /// finish-reason chunk): subtracted from `tokens` when the engine reports no usage.
    empty_events: u32,
}

impl UsageCount {
    pub(super) fn new(client_wants_usage: bool) -> Self {
        Self {
            client_wants_usage,
            reported: None,
            tokens: 0,
            empty_events: 0,
        }
    }

    pub(super) fn client_wants_usage(&self) -> bool {
        self.client_wants_usage
    }

    /// Content events relayed so far.
    pub(super) fn tokens(&self) -> u32 {
        self.tokens
    }

    /// Reads `data`'s usage, if it reports one.
    pub(super) fn splice(&mut self, data: Bytes, migration: Option<&Migration>) -> Spliced {
        if !switchyard_protocol::json_key::USAGE.in_bytes(&data) {
            return Spliced::Plain(data);
        }
        let Ok(probe) = serde_json::from_slice::<UsageProbe>(&data) else {
            return Spliced::Plain(data);
        };
        let migrated = migration.filter(|m| m.migrated());
        let usage_only = probe.choices.as_ref().is_some_and(Vec::is_empty);
        let reported = probe.usage.is_some();
        if let Some(usage) = probe.usage {
            self.reported = Some(match migrated {
                Some(m) => m.adjust_usage(usage),
                None => usage,
            });
        }
        if usage_only {
            if !self.client_wants_usage {
                return Spliced::UsageOnly(None);
            }
            return Spliced::UsageOnly(Some(match (migrated, &self.reported) {
                (Some(_), Some(usage)) => with_usage(data, usage),
                _ => data,
            }));
        }
        let send = match (migrated, reported, &self.reported) {
            (Some(_), true, Some(usage)) => Some(with_usage(data.clone(), usage)),
            _ => None,
        };
        Spliced::Content { data, send }
    }

    /// Counts one relayed content event.
    pub(super) fn content(&mut self, data: &[u8]) {
        self.tokens += 1;
        // One key search for a content chunk (the common case).
        if !carries_text(data) {
            self.empty_events += 1;
        }
    }

    /// The usage a stream ended without a continuation reports (its budget spent).
    pub(super) fn set(&mut self, usage: Usage) {
        self.reported = Some(usage);
    }

    /// The stream's usage at its end: the workers' report, else the count of text events
    /// (`false` as the second value says it is an estimate).
    pub(super) fn total(&self) -> (Usage, bool) {
        match self.reported {
            Some(usage) => (usage, true),
            // The engine ignored `include_usage` (llama-cpp-python does): count what was
            // generated, not the role and finish chunks around it.
            None => (
                Usage::new(0, self.tokens.saturating_sub(self.empty_events)),
                false,
            ),
        }
    }
}

/// Whether a chunk carries generated text (content, completion text, reasoning, tool-call
/// arguments), judged from the bytes: the opening `{"role":"assistant","content":""}` chunk
/// and a closing `"delta":{}` chunk do not. Only used when the engine reports no usage.
fn carries_text(data: &[u8]) -> bool {
    use switchyard_protocol::json_key::{ARGUMENTS, CONTENT, REASONING_CONTENT, TEXT};
    [&CONTENT, &TEXT, &REASONING_CONTENT, &ARGUMENTS]
        .iter()
        .any(|key| key.string_value_at(data).is_some_and(|v| !v.is_empty()))
}

/// `data` with its `usage` replaced (a spliced stream reports the whole stream's usage).
fn with_usage(data: Bytes, usage: &Usage) -> Bytes {
    let Ok(mut chunk) = serde_json::from_slice::<serde_json::Value>(&data) else {
        return data;
    };
    match (chunk.as_object_mut(), serde_json::to_value(usage)) {
        (Some(object), Ok(usage)) => {
            object.insert("usage".to_owned(), usage);
            serde_json::to_vec(&chunk).map(Bytes::from).unwrap_or(data)
        }
        _ => data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_only_chunk_is_dropped_unless_the_client_asked() {
        let chunk = Bytes::from_static(
            br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        );
        let mut quiet = UsageCount::new(false);
        assert_eq!(quiet.splice(chunk.clone(), None), Spliced::UsageOnly(None));
        assert_eq!(quiet.total(), (Usage::new(3, 2), true));
        let mut asked = UsageCount::new(true);
        assert_eq!(
            asked.splice(chunk.clone(), None),
            Spliced::UsageOnly(Some(chunk))
        );
    }

    #[test]
    fn without_a_report_the_text_events_are_counted() {
        let mut count = UsageCount::new(false);
        count.content(br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#);
        count.content(br#"{"choices":[{"delta":{"content":"a"}}]}"#);
        count.content(br#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#);
        assert_eq!(count.total(), (Usage::new(0, 1), false));
    }
}
