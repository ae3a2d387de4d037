//! A streamed Responses answer's `response` object, written from parts serialized once.
//!
//! The stream repeats the whole `response` object — id, model and every echoed request
//! parameter — in `response.created`, `.in_progress` and the final `.completed` (or
//! `.incomplete`, `.failed`). Serializing a [`ResponseObject`] for each (building it clones
//! the head; its flattened echo goes through serde's generic map path) was the largest fixed
//! cost of a translated stream. Here what never changes is serialized once per stream and
//! each event splices in its status, error, output and usage; the tests check the bytes
//! equal serde's serialization of the same object.
//!
//! [`ResponseObject`]: crate::responses::ResponseObject

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::responses_reply::ResponseHead;
use crate::responses::{IncompleteDetails, ResponseError, ResponseUsage};

/// The parts of one request's `response` object that every event repeats, as JSON.
#[derive(Debug, Clone)]
pub struct ResponseJson {
    /// `{"id":…,"object":"response","created_at":…` — the fields before `status`.
    opening: Vec<u8>,
    /// `,"model":…` — between `incomplete_details` and `output`.
    model: Vec<u8>,
    /// `,"instructions":…}` — the echoed parameters after `usage`, and the closing brace.
    echo: Vec<u8>,
}

/// The `response` fields before `status`, in [`crate::responses::ResponseObject`]'s order.
#[derive(Serialize)]
struct Opening<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
}

impl ResponseJson {
    pub fn new(head: &ResponseHead) -> Self {
        let opening = Opening {
            id: &head.id,
            object: "response",
            created_at: head.created_at,
        };
        // Strings, numbers and maps with string keys: serializing cannot fail.
        let mut opening = serde_json::to_vec(&opening).unwrap_or_default();
        opening.pop(); // its `}`: the object goes on
        let mut model = b",\"model\":".to_vec();
        model.extend(serde_json::to_vec(&head.model).unwrap_or_default());
        // The echo is flattened into the object: its fields, after a comma, then the close.
        let mut echo = serde_json::to_vec(&head.echo).unwrap_or_default();
        match echo.as_slice() {
            b"{}" | b"" => echo = b"}".to_vec(),
            _ => echo[0] = b',',
        }
        Self {
            opening,
            model,
            echo,
        }
    }

    /// Writes the `response` object with these fields; `output` is the JSON of the output
    /// items, comma-separated, without the array's brackets.
    pub fn write(&self, out: &mut BytesMut, fields: Fields<'_>) {
        out.put_slice(&self.opening);
        out.put_slice(b",\"status\":\"");
        out.put_slice(fields.status.as_bytes());
        out.put_slice(b"\",\"error\":");
        put_nullable(out, fields.error);
        out.put_slice(b",\"incomplete_details\":");
        put_nullable(out, fields.incomplete);
        out.put_slice(&self.model);
        out.put_slice(b",\"output\":[");
        out.put_slice(fields.output);
        out.put_slice(b"],\"usage\":");
        put_nullable(out, fields.usage);
        out.put_slice(&self.echo);
    }
}

/// What differs between the `response` objects of one stream.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// One of the API's status words (plain ASCII: written as is).
    pub status: &'static str,
    pub error: Option<&'a ResponseError>,
    pub incomplete: Option<&'a IncompleteDetails>,
    pub output: &'a [u8],
    pub usage: Option<&'a ResponseUsage>,
}

impl Fields<'_> {
    /// A fresh response: in progress, nothing out yet.
    pub fn in_progress() -> Self {
        Fields {
            status: "in_progress",
            error: None,
            incomplete: None,
            output: b"",
            usage: None,
        }
    }
}

fn put_nullable(out: &mut BytesMut, value: Option<&impl Serialize>) {
    let start = out.len();
    let written = match value {
        Some(value) => serde_json::to_writer(out.writer(), value).is_ok(),
        None => false,
    };
    if !written {
        out.truncate(start);
        out.put_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responses::{OutputItem, OutputText, ResponseObject};
    use serde_json::json;

    fn heads() -> Vec<ResponseHead> {
        let requests = [
            json!({"model":"m","input":"hi"}),
            json!({"model":"odd \"model\"\n/é","input":"hi","instructions":"be \"brief\"",
                "max_output_tokens":16,"temperature":0.25,"top_p":1,"parallel_tool_calls":false,
                "tool_choice":{"type":"function","name":"get"},"metadata":{"k":"v"},
                "text":{"format":{"type":"json_schema","name":"s","schema":{"type":"object"}}},
                "tools":[{"type":"function","name":"get","parameters":{"type":"object"}}]}),
        ];
        requests
            .into_iter()
            .map(|r| ResponseHead::new(&serde_json::from_value(r).unwrap()))
            .collect()
    }

    fn serde_bytes(object: &ResponseObject) -> Vec<u8> {
        serde_json::to_vec(object).unwrap()
    }

    #[test]
    fn an_in_progress_object_is_byte_for_byte_the_serialized_one() {
        for head in heads() {
            let mut written = BytesMut::new();
            ResponseJson::new(&head).write(&mut written, Fields::in_progress());
            assert_eq!(
                written,
                serde_bytes(&head.object("in_progress", Vec::new(), None))
            );
        }
    }

    #[test]
    fn a_final_object_is_byte_for_byte_the_serialized_one() {
        let items = vec![
            OutputItem::Message {
                id: "msg_1".into(),
                status: "completed",
                role: "assistant",
                content: vec![OutputText::new("a \"b\"".into())],
            },
            OutputItem::FunctionCall {
                id: "fc_1".into(),
                call_id: "call_1".into(),
                name: "get".into(),
                arguments: "{\"a\":1}".into(),
                status: "completed",
            },
        ];
        let output: Vec<u8> = items
            .iter()
            .map(|i| serde_json::to_vec(i).unwrap())
            .collect::<Vec<_>>()
            .join(&b',');
        let usage = ResponseUsage::new(9, 16);
        let error = ResponseError {
            code: "server_error",
            message: "worker \"died\"".into(),
        };
        let incomplete = IncompleteDetails {
            reason: "max_output_tokens",
        };
        for head in heads() {
            let json = ResponseJson::new(&head);
            let cases = [
                ("completed", None, None, Some(usage)),
                ("incomplete", None, Some(&incomplete), Some(usage)),
                ("failed", Some(&error), None, None),
            ];
            for (status, error, incomplete, usage) in cases {
                let mut expected = head.object(status, items.clone(), usage);
                expected.error = error.cloned();
                expected.incomplete_details = incomplete.cloned();
                let mut written = BytesMut::new();
                let fields = Fields {
                    status,
                    error,
                    incomplete,
                    output: &output,
                    usage: usage.as_ref(),
                };
                json.write(&mut written, fields);
                assert_eq!(written, serde_bytes(&expected), "{status}");
            }
        }
    }
}
