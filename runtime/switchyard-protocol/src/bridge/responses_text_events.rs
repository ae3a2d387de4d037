//! The events that open and close a streamed Responses message item, written as bytes:
//! `response.output_item.added` + `response.content_part.added`, and
//! `response.output_text.done` + `response.content_part.done` + `response.output_item.done`.
//!
//! Every translated text stream sends these five once, and serde's generic serializer spent
//! most of their cost escaping constant names and the item id again for each (callgrind:
//! ~25 k instructions per stream). Here the constant parts are constant bytes and the id
//! and the text are escaped once; the tests check each event equals the serialized one.

use bytes::BytesMut;

use super::put_u64;

/// Opens `"event: <kind>\ndata: {"type":"<kind>","sequence_number":<seq>`.
fn head(out: &mut BytesMut, kind: &str, seq: u64) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: {\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"sequence_number\":");
    put_u64(out, seq);
}

/// `,"item_id":<id>,"output_index":<i>,"content_index":0`
fn item_position(out: &mut BytesMut, id_json: &str, output_index: usize) {
    out.extend_from_slice(b",\"item_id\":");
    out.extend_from_slice(id_json.as_bytes());
    out.extend_from_slice(b",\"output_index\":");
    put_u64(out, output_index as u64);
    out.extend_from_slice(b",\"content_index\":0");
}

/// `{"type":"output_text","text":<text>,"annotations":[],"logprobs":[]}`
fn part(out: &mut BytesMut, text_json: &str) {
    out.extend_from_slice(b"{\"type\":\"output_text\",\"text\":");
    out.extend_from_slice(text_json.as_bytes());
    out.extend_from_slice(b",\"annotations\":[],\"logprobs\":[]}");
}

/// `response.output_item.added` (sequence `seq`) for a new message item and its
/// `response.content_part.added` (`seq + 1`). `id_json` is the item id as a JSON string.
pub fn write_opened(out: &mut BytesMut, seq: u64, output_index: usize, id_json: &str) {
    head(out, "response.output_item.added", seq);
    out.extend_from_slice(b",\"output_index\":");
    put_u64(out, output_index as u64);
    out.extend_from_slice(b",\"item\":{\"type\":\"message\",\"id\":");
    out.extend_from_slice(id_json.as_bytes());
    out.extend_from_slice(
        b",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n",
    );
    head(out, "response.content_part.added", seq + 1);
    item_position(out, id_json, output_index);
    out.extend_from_slice(b",\"part\":");
    part(out, "\"\"");
    out.extend_from_slice(b"}\n\n");
}

/// The completed message item whose whole text is `text_json` (a JSON string), as its
/// `response.output_item.done` event and the final `response` object's `output` carry it.
pub fn write_message_item(out: &mut BytesMut, id_json: &str, text_json: &str) {
    out.extend_from_slice(b"{\"type\":\"message\",\"id\":");
    out.extend_from_slice(id_json.as_bytes());
    out.extend_from_slice(b",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[");
    part(out, text_json);
    out.extend_from_slice(b"]}");
}

/// `response.output_text.done` (sequence `seq`), `response.content_part.done` (`seq + 1`)
/// and `response.output_item.done` (`seq + 2`) for a message item whose whole text is
/// `text_json` (a JSON string); `item` is the item itself ([`write_message_item`]).
pub fn write_closed(
    out: &mut BytesMut,
    seq: u64,
    output_index: usize,
    (id_json, text_json): (&str, &str),
    item: &[u8],
) {
    head(out, "response.output_text.done", seq);
    item_position(out, id_json, output_index);
    out.extend_from_slice(b",\"text\":");
    out.extend_from_slice(text_json.as_bytes());
    out.extend_from_slice(b",\"logprobs\":[]}\n\n");
    head(out, "response.content_part.done", seq + 1);
    item_position(out, id_json, output_index);
    out.extend_from_slice(b",\"part\":");
    part(out, text_json);
    out.extend_from_slice(b"}\n\n");
    head(out, "response.output_item.done", seq + 2);
    out.extend_from_slice(b",\"output_index\":");
    put_u64(out, output_index as u64);
    out.extend_from_slice(b",\"item\":");
    out.extend_from_slice(item);
    out.extend_from_slice(b"}\n\n");
}

#[cfg(test)]
mod tests {
    use super::super::write_event;
    use super::*;
    use crate::responses::{
        ContentPartEvent, OutputItem, OutputItemEvent, OutputText, TextDoneEvent,
    };

    fn json(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }

    const ID: &str = "msg_\"odd\"\\id";

    #[test]
    fn the_opening_events_are_byte_for_byte_the_serialized_ones() {
        let mut expected = BytesMut::new();
        let item = OutputItem::Message {
            id: ID.to_owned(),
            status: "in_progress",
            role: "assistant",
            content: Vec::new(),
        };
        let kind = "response.output_item.added";
        let event = OutputItemEvent {
            kind,
            sequence_number: 2,
            output_index: 3,
            item: &item,
        };
        write_event(&mut expected, kind, &event);
        let kind = "response.content_part.added";
        let part = OutputText::new(String::new());
        let event = ContentPartEvent {
            kind,
            sequence_number: 3,
            item_id: ID,
            output_index: 3,
            content_index: 0,
            part: &part,
        };
        write_event(&mut expected, kind, &event);
        let mut written = BytesMut::new();
        write_opened(&mut written, 2, 3, &json(ID));
        assert_eq!(written, expected);
    }

    #[test]
    fn the_closing_events_are_byte_for_byte_the_serialized_ones() {
        for text in ["", "plain", "quote \" back\\slash\nnew line \u{1} é 😀"] {
            let mut expected = BytesMut::new();
            let kind = "response.output_text.done";
            let event = TextDoneEvent {
                kind,
                sequence_number: 40,
                item_id: ID,
                output_index: 1,
                content_index: 0,
                text,
                logprobs: [],
            };
            write_event(&mut expected, kind, &event);
            let part = OutputText::new(text.to_owned());
            let kind = "response.content_part.done";
            let event = ContentPartEvent {
                kind,
                sequence_number: 41,
                item_id: ID,
                output_index: 1,
                content_index: 0,
                part: &part,
            };
            write_event(&mut expected, kind, &event);
            let item = OutputItem::Message {
                id: ID.to_owned(),
                status: "completed",
                role: "assistant",
                content: vec![part],
            };
            let kind = "response.output_item.done";
            let event = OutputItemEvent {
                kind,
                sequence_number: 42,
                output_index: 1,
                item: &item,
            };
            write_event(&mut expected, kind, &event);
            let mut written = BytesMut::new();
            let mut item = BytesMut::new();
            write_message_item(&mut item, &json(ID), &json(text));
            write_closed(&mut written, 40, 1, (&json(ID), &json(text)), &item);
            assert_eq!(written, expected, "{text}");
        }
    }
}
