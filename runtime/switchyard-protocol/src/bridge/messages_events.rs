//! The events of a streamed Messages text answer, written as bytes: `message_start`,
//! `content_block_start` for a text block, `content_block_delta` with a `text_delta`,
//! `content_block_stop` and `message_delta`.
//!
//! Each translated stream sends these (the delta once per token). Their JSON is constant
//! but for an index, the head's id and model, a token and the usage, and serde's generic
//! serializer spent most of its time escaping the constant names again per event; here
//! they are constant bytes. The tests check each equals the serialized event.

use bytes::BytesMut;

use super::{put_json_str, put_u64};
use crate::messages::MessageUsage;

/// `message_start` for the message `id` of `model`, with no content yet and zero usage
/// (the chat stream reports usage at its end: `message_delta` carries it).
pub fn write_message_start(out: &mut BytesMut, id: &str, model: &str) {
    out.extend_from_slice(
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":",
    );
    put_json_str(out, id);
    out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    put_json_str(out, model);
    out.extend_from_slice(
        b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n",
    );
}

/// `content_block_start` for an empty text block at `index`.
pub fn write_text_block_start(out: &mut BytesMut, index: usize) {
    out.extend_from_slice(
        b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":",
    );
    put_u64(out, index as u64);
    out.extend_from_slice(b",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
}

/// A `content_block_delta` with a `text_delta`: the one event per token.
pub fn write_text_delta(out: &mut BytesMut, index: usize, text: &str) {
    out.extend_from_slice(
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
    );
    put_u64(out, index as u64);
    out.extend_from_slice(b",\"delta\":{\"type\":\"text_delta\",\"text\":");
    put_json_str(out, text);
    out.extend_from_slice(b"}}\n\n");
}

/// `content_block_stop` for the block at `index`.
pub fn write_block_stop(out: &mut BytesMut, index: usize) {
    out.extend_from_slice(
        b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":",
    );
    put_u64(out, index as u64);
    out.extend_from_slice(b"}\n\n");
}

/// `message_delta`: the stop reason (one of the API's words, plain ASCII), the matched stop
/// sequence and the usage.
pub fn write_message_delta(
    out: &mut BytesMut,
    stop_reason: &'static str,
    stop_sequence: Option<&str>,
    usage: MessageUsage,
) {
    out.extend_from_slice(
        b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"",
    );
    out.extend_from_slice(stop_reason.as_bytes());
    out.extend_from_slice(b"\",\"stop_sequence\":");
    match stop_sequence {
        Some(sequence) => put_json_str(out, sequence),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"},\"usage\":{\"input_tokens\":");
    put_u64(out, u64::from(usage.input_tokens));
    out.extend_from_slice(b",\"output_tokens\":");
    put_u64(out, u64::from(usage.output_tokens));
    out.extend_from_slice(b"}}\n\n");
}

#[cfg(test)]
mod tests {
    use super::super::messages_reply::MessageHead;
    use super::super::write_event;
    use super::*;
    use crate::messages::{
        BlockDelta, BlockDeltaEvent, BlockStartEvent, BlockStopEvent, MessageDeltaEvent,
        MessageStartEvent, OutputBlock, StopDelta,
    };

    const ODD: &str = "quote \" back\\slash\nnew line \u{1} é 😀";

    #[test]
    fn message_start_is_byte_for_byte_the_serialized_one() {
        for model in ["m", ODD] {
            let request = serde_json::json!({"model":model,"max_tokens":5,"messages":[]});
            let mut head = MessageHead::new(&serde_json::from_value(request).unwrap());
            head.id = format!("msg_{model}");
            let message = head.object(Vec::new(), MessageUsage::default());
            let kind = "message_start";
            let mut expected = BytesMut::new();
            let event = MessageStartEvent {
                kind,
                message: &message,
            };
            write_event(&mut expected, kind, &event);
            let mut written = BytesMut::new();
            write_message_start(&mut written, &head.id, &head.model);
            assert_eq!(written, expected);
        }
    }

    #[test]
    fn block_events_are_byte_for_byte_the_serialized_ones() {
        for index in [0, 7, 12_345] {
            let mut expected = BytesMut::new();
            let block = OutputBlock::Text {
                text: String::new(),
            };
            let kind = "content_block_start";
            let event = BlockStartEvent {
                kind,
                index,
                content_block: &block,
            };
            write_event(&mut expected, kind, &event);
            let kind = "content_block_stop";
            write_event(&mut expected, kind, &BlockStopEvent { kind, index });
            let mut written = BytesMut::new();
            write_text_block_start(&mut written, index);
            write_block_stop(&mut written, index);
            assert_eq!(written, expected);
        }
    }

    #[test]
    fn a_text_delta_is_byte_for_byte_the_serialized_one() {
        for text in ["plain", ODD] {
            let mut expected = BytesMut::new();
            let event = BlockDeltaEvent {
                kind: "content_block_delta",
                index: 2,
                delta: BlockDelta::TextDelta { text },
            };
            write_event(&mut expected, "content_block_delta", &event);
            let mut written = BytesMut::new();
            write_text_delta(&mut written, 2, text);
            assert_eq!(written, expected);
        }
    }

    #[test]
    fn message_delta_is_byte_for_byte_the_serialized_one() {
        let usage = MessageUsage {
            input_tokens: 9,
            output_tokens: 4_000_000_000,
        };
        for (stop_reason, stop_sequence) in [("end_turn", None), ("stop_sequence", Some(ODD))] {
            let kind = "message_delta";
            let event = MessageDeltaEvent {
                kind,
                delta: StopDelta {
                    stop_reason: Some(stop_reason),
                    stop_sequence,
                },
                usage,
            };
            let mut expected = BytesMut::new();
            write_event(&mut expected, kind, &event);
            let mut written = BytesMut::new();
            write_message_delta(&mut written, stop_reason, stop_sequence, usage);
            assert_eq!(written, expected);
        }
    }
}
