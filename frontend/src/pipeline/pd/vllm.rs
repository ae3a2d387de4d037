//! vLLM's disaggregation protocol (its KV connectors: NIXL, Mooncake, …), as vLLM's own
//! disaggregated-serving proxy speaks it:
//!
//! 1. The prefill instance gets the request with `max_tokens: 1` (and
//!    `max_completion_tokens: 1` when the request has it), `stream: false`, no
//!    `stream_options`, and `kv_transfer_params: {"do_remote_decode": true,
//!    "do_remote_prefill": false, "remote_engine_id": null, "remote_block_ids": null,
//!    "remote_host": null, "remote_port": null}`. It computes the prompt's KV cache, keeps the
//!    blocks for the decode side to read, and answers with a top-level `kv_transfer_params`
//!    naming them (`do_remote_prefill: true`, `remote_engine_id`, `remote_block_ids`,
//!    `remote_host`, `remote_port`, and connector-specific keys such as `remote_request_id` or
//!    `tp_size`).
//! 2. The decode instance gets the original request carrying that `kv_transfer_params` object
//!    exactly as the prefill returned it (the frontend never interprets it beyond "an
//!    object"), reads the blocks from the prefill instance and generates.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::body::Fields;

/// The prefill request: `raw` asking for one token of prefill whose KV stays for a remote
/// decode. `None` if `raw` is not a JSON object.
pub fn prefill_body(raw: &[u8]) -> Option<Bytes> {
    let mut fields = Fields::parse(raw)?;
    fields.set("stream", false)?;
    fields.remove("stream_options");
    fields.set("max_tokens", 1)?;
    if fields.has("max_completion_tokens") {
        fields.set("max_completion_tokens", 1)?;
    }
    fields.set(
        "kv_transfer_params",
        serde_json::json!({
            "do_remote_decode": true,
            "do_remote_prefill": false,
            "remote_engine_id": null,
            "remote_block_ids": null,
            "remote_host": null,
            "remote_port": null,
        }),
    )?;
    fields.to_bytes()
}

#[derive(Deserialize)]
struct PrefillAnswer {
    #[serde(default)]
    kv_transfer_params: Option<Box<RawValue>>,
}

/// The `kv_transfer_params` object of a prefill instance's answer; an error says what was
/// wrong with it (the instance answered 2xx without a usable handle: no KV connector, or a
/// prompt too short to transfer).
pub fn transfer_params(answer: &[u8]) -> Result<Box<RawValue>, String> {
    let parsed: PrefillAnswer = serde_json::from_slice(answer)
        .map_err(|e| format!("the prefill answer is not a JSON object: {e}"))?;
    match parsed.kv_transfer_params {
        Some(raw) if raw.get().trim_start().starts_with('{') => Ok(raw),
        Some(_) => Err("the prefill answer's kv_transfer_params is not an object".to_owned()),
        None => Err("the prefill answer has no kv_transfer_params".to_owned()),
    }
}

/// The decode request: `raw` (the body the decode instance would get anyway) carrying the
/// prefill's `kv_transfer_params`.
pub fn decode_body(raw: &[u8], params: Box<RawValue>) -> Option<Bytes> {
    let mut fields = Fields::parse(raw)?;
    fields.set_raw("kv_transfer_params", params);
    fields.to_bytes()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn the_prefill_asks_for_one_unstreamed_token_kept_for_a_remote_decode() {
        let raw = br#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":99,"x_big":123456789012345678901234567890}"#;
        let out = prefill_body(raw).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains(r#""x_big":123456789012345678901234567890"#));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream"], false);
        assert!(v.get("stream_options").is_none());
        assert_eq!(
            (
                v["max_tokens"].as_u64(),
                v["max_completion_tokens"].as_u64()
            ),
            (Some(1), Some(1))
        );
        let params = &v["kv_transfer_params"];
        assert_eq!(params["do_remote_decode"], true);
        assert_eq!(params["do_remote_prefill"], false);
        for key in [
            "remote_engine_id",
            "remote_block_ids",
            "remote_host",
            "remote_port",
        ] {
            assert!(params[key].is_null(), "{key}");
        }
        let plain = prefill_body(br#"{"model":"m","prompt":"p"}"#).unwrap();
        let v: Value = serde_json::from_slice(&plain).unwrap();
        assert!(v.get("max_completion_tokens").is_none());
        assert!(prefill_body(b"[1]").is_none());
    }

    #[test]
    fn the_decode_gets_the_prefills_params_exactly_as_returned() {
        let answer = br#"{"id":"x","choices":[],"kv_transfer_params":{"do_remote_prefill":true,"do_remote_decode":false,"remote_block_ids":[1,2,3],"remote_engine_id":"e-1","remote_host":"10.0.0.1","remote_port":5600,"tp_size":1,"x":1.0000000000000000001}}"#;
        let params = transfer_params(answer).unwrap();
        let out = decode_body(br#"{"model":"m","prompt":"p","stream":true}"#, params).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains(r#""x":1.0000000000000000001"#), "{text}");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["kv_transfer_params"]["remote_block_ids"][2], 3);
        assert_eq!(v["kv_transfer_params"]["remote_engine_id"], "e-1");
        assert_eq!(v["stream"], true);
    }

    #[test]
    fn an_answer_without_a_usable_handle_is_an_error_naming_it() {
        for (answer, says) in [
            (&br#"{"choices":[]}"#[..], "no kv_transfer_params"),
            (br#"{"kv_transfer_params":null}"#, "no kv_transfer_params"),
            (br#"{"kv_transfer_params":[1]}"#, "not an object"),
            (br#"not json"#, "not a JSON object"),
        ] {
            let err = transfer_params(answer).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }
}
