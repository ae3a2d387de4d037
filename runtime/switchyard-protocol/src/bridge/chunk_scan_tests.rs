//! The scanner against serde's full decode of the same bytes: equal values on real engine
//! chunks, and an error wherever serde gives one.

use super::*;

/// Streamed chunks as vLLM writes them (pydantic `model_dump_json(exclude_unset=True)`):
/// the role chunk, text, a stop string or token id in `stop_reason`, tool-call deltas and
/// the usage chunk.
const VLLM: &[&str] = &[
    r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":" Hello"},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"m","choices":[{"index":0,"delta":{"content":" caf\u00e9 \ud83d\ude00 \"q\"\n\\"},"logprobs":{"content":[{"token":" caf","logprob":-0.25,"bytes":[32,99,97,102],"top_logprobs":[{"token":" caf","logprob":-0.25,"bytes":[32,99,97,102]}]}]},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"m","choices":[{"index":0,"delta":{"content":"é 日本語 😀"},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"m","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":"END"}]}"#,
    r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"m","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":128009}]}"#,
    r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"m","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"length","stop_reason":null}]}"#,
    r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-9a2b","type":"function","index":0,"function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Par"}}]},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"chatcmpl-tool-77","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls","stop_reason":null}]}"#,
    r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"m","choices":[],"usage":{"prompt_tokens":12,"total_tokens":28,"completion_tokens":16,"prompt_tokens_details":null}}"#,
];

/// Streamed chunks as SGLang writes them: every optional field present as `null`
/// (`reasoning_content`, `tool_calls`, `matched_stop`, a per-chunk `usage`).
const SGLANG: &[&str] = &[
    r#"{"id":"b8e3","object":"chat.completion.chunk","created":1733500000,"model":"qwen/qwen2.5-0.5b-instruct","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning_content":null,"tool_calls":null},"logprobs":null,"finish_reason":null,"matched_stop":null}],"usage":null}"#,
    r#"{"id":"b8e3","object":"chat.completion.chunk","created":1733500000,"model":"q","choices":[{"index":0,"delta":{"role":null,"content":"Hi","reasoning_content":null,"tool_calls":null},"logprobs":null,"finish_reason":null,"matched_stop":null}],"usage":null}"#,
    r#"{"id":"b8e3","object":"chat.completion.chunk","created":1733500000,"model":"q","choices":[{"index":0,"delta":{"role":null,"content":null,"reasoning_content":"thinking \u2026","tool_calls":null},"logprobs":null,"finish_reason":null,"matched_stop":null}],"usage":null}"#,
    r#"{"id":"b8e3","object":"chat.completion.chunk","created":1733500000,"model":"q","choices":[{"index":0,"delta":{"role":null,"content":null,"reasoning_content":null,"tool_calls":[{"id":"call_0f3","index":0,"type":"function","function":{"name":"search","arguments":"{\"q\": \"rust\"}"}}]},"logprobs":null,"finish_reason":null,"matched_stop":null}],"usage":null}"#,
    r#"{"id":"b8e3","object":"chat.completion.chunk","created":1733500000,"model":"q","choices":[{"index":0,"delta":{"role":null,"content":null,"reasoning_content":null,"tool_calls":null},"logprobs":null,"finish_reason":"stop","matched_stop":151645}],"usage":null}"#,
    r#"{"id":"b8e3","object":"chat.completion.chunk","created":1733500000,"model":"q","choices":[],"usage":{"prompt_tokens":9,"total_tokens":25,"completion_tokens":16,"prompt_tokens_details":null,"reasoning_tokens":0}}"#,
];

/// Shapes no engine above writes but JSON allows: whitespace everywhere (Python's
/// `json.dumps`), several choices, an empty object, deep ignored values.
const OTHER: &[&str] = &[
    "{ \"choices\" : [ { \"index\" : 0 , \"delta\" : { \"content\" : \"a b\" } , \"finish_reason\" : null } ] , \"usage\" : null }\n",
    r#"{"choices":[{"index":1,"delta":{"content":"second"}},{"index":0,"delta":{"content":"first"},"finish_reason":"stop"}]}"#,
    r#"{}"#,
    r#"{"choices":[{}]}"#,
    r#"{"x":{"y":[[[{"z":[1,-2.5e+3,0,true,false,null,"\\\"",{}]}]]],"w":[]},"choices":[{"delta":{}}]}"#,
    r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"st\u006fp"}]}"#,
    r#"{"ch\u006fices":[{"index":0,"delta":{"content":"escaped key"}}]}"#,
];

fn reference(data: &[u8]) -> std::result::Result<Chunk<'_>, serde_json::Error> {
    serde_json::from_slice(data)
}

fn agrees(data: &[u8]) {
    let scanned = scan(data);
    let full = reference(data);
    match (&scanned, &full) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(data)),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "scan {scanned:?} but serde {full:?} for {}",
            String::from_utf8_lossy(data)
        ),
    }
}

#[test]
fn real_engine_chunks_decode_as_serde_decodes_them() {
    for data in VLLM.iter().chain(SGLANG).chain(OTHER) {
        let scanned = scan(data.as_bytes()).unwrap_or_else(|e| panic!("{e}: {data}"));
        assert_eq!(
            Ok(scanned),
            reference(data.as_bytes()).map_err(|_| ()),
            "{data}"
        );
    }
}

#[test]
fn the_fields_read_have_the_values_the_bridges_need() {
    let chunk = scan(VLLM[2].as_bytes()).unwrap();
    let content = chunk.choices.get(0).unwrap().delta.content.as_deref();
    assert_eq!(content, Some(" café 😀 \"q\"\n\\"));
    let chunk = scan(VLLM[8].as_bytes()).unwrap();
    let calls = chunk
        .choices
        .get(0)
        .unwrap()
        .delta
        .tool_calls
        .as_ref()
        .unwrap();
    let arguments = calls[0].function.as_ref().unwrap().arguments.as_deref();
    assert_eq!(arguments, Some("{\"city\": \"Par"));
    let chunk = scan(SGLANG[5].as_bytes()).unwrap();
    assert_eq!(chunk.usage, Some(crate::Usage::new(9, 16)));
    let chunk = scan(SGLANG[4].as_bytes()).unwrap();
    assert_eq!(
        chunk.choices.get(0).unwrap().finish_reason.as_deref(),
        Some("stop")
    );
    assert_eq!(chunk.choices.get(0).unwrap().delta.tool_calls, None);
}

#[test]
fn text_without_escapes_is_borrowed_not_copied() {
    let chunk = scan(VLLM[1].as_bytes()).unwrap();
    assert!(matches!(
        chunk.choices.get(0).unwrap().delta.content,
        Some(Cow::Borrowed(" Hello"))
    ));
    let chunk = scan(VLLM[3].as_bytes()).unwrap();
    assert!(matches!(
        chunk.choices.get(0).unwrap().delta.content,
        Some(Cow::Borrowed(_))
    ));
}

#[test]
fn what_serde_rejects_is_rejected() {
    let deep_array = format!(
        r#"{{"x":{}{},"choices":[]}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let bad: &[&str] = &[
        "",
        "null",
        r#"{"choices":[{"index":-1}]}"#,
        r#"{"choices":[{"index":1.0}]}"#,
        r#"{"choices":[{"index":1e0}]}"#,
        r#"{"choices":[{"index":01}]}"#,
        r#"{"choices":[{"index":4294967296}]}"#,
        r#"{"choices":[{"index":null}]}"#,
        r#"{"choices":[{"delta":null}]}"#,
        r#"{"choices":null}"#,
        r#"{"choices":[{"delta":{"content":5}}]}"#,
        r#"{"choices":[{"finish_reason":true}]}"#,
        r#"{"choices":[],"usage":{"completion_tokens":1}}"#,
        r#"{"choices":[],"choices":[]}"#,
        r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a"}}]} x"#,
        r#"{"choices":[{"delta":{"content":"a\x"}}]}"#,
        r#"{"choices":[{"delta":{"content":"a\u12"}}]}"#,
        "{\"choices\":[{\"delta\":{\"content\":\"tab\there\"}}]}",
        r#"{"created":01,"choices":[]}"#,
        r#"{"created":-,"choices":[]}"#,
        r#"{"created":1.,"choices":[]}"#,
        r#"{"created":nul,"choices":[]}"#,
        r#"{"choices":[{"delta":{"content":"unterminated}}]}"#,
        r#"{"choices":[{"delta":{"content":"a"}},]}"#,
        r#"{"choices":[{"delta":{"content":"a"},}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":"0"}]}}]}"#,
    ];
    for data in bad {
        assert!(scan(data.as_bytes()).is_err(), "accepted {data}");
        assert!(reference(data.as_bytes()).is_err(), "serde accepts {data}");
    }
    // Two deliberate differences. serde's derive also takes a struct as a positional array
    // (`[choices, usage]`); no engine writes that, and a chunk must be an object. And
    // serde_json steps over ignored values without a nesting limit; the scanner recurses,
    // so it stops at serde_json's limit for decoded values (128) to bound its stack.
    assert!(scan(b"[]").is_err());
    assert!(reference(b"[]").is_ok());
    assert!(scan(deep_array.as_bytes()).is_err());
    assert!(reference(deep_array.as_bytes()).is_ok());
    // Invalid UTF-8 in a string that is read.
    let mut data = br#"{"choices":[{"delta":{"content":"#.to_vec();
    data.extend_from_slice(b"\"\xff\"}}]}");
    assert!(scan(&data).is_err());
    assert!(reference(&data).is_err());
}

/// Every single-byte change of every fixture to a JSON-significant byte: the scanner and
/// serde agree on accepting it and on the value, and the scanner never panics.
#[test]
fn mutated_chunks_agree_with_serde() {
    let replacements = b"\"\\{}[],:0-. nex";
    for data in VLLM.iter().chain(SGLANG).chain(OTHER) {
        let data = data.as_bytes();
        for at in 0..data.len() {
            for &byte in replacements {
                let mut mutated = data.to_vec();
                mutated[at] = byte;
                agrees(&mutated);
            }
            agrees(&data[..at]);
        }
    }
}

/// The eight-bytes-at-a-time run finder against the byte-at-a-time definition, for every
/// stop byte at every offset of strings around the word size, among plain and UTF-8 bytes.
#[test]
fn plain_runs_stop_at_the_first_quote_backslash_or_control_character() {
    let naive = |b: &[u8]| {
        b.iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .unwrap_or(b.len())
    };
    let fillers: [&[u8]; 3] = [
        b"abcdefghijklmnopqrstuvwxyz012345",
        "ééééééééééééééé".as_bytes(),
        b"\x7f !#[]{}~\xff\x80 !#[]{}~\xff\x80",
    ];
    for filler in fillers {
        for len in 0..filler.len() {
            let plain = &filler[..len];
            assert_eq!(plain_run(plain), naive(plain));
            for at in 0..len {
                for stop in [b'"', b'\\', 0, 0x1f, b'\n'] {
                    let mut s = plain.to_vec();
                    s[at] = stop;
                    assert_eq!(plain_run(&s), at, "{s:?}");
                    s.push(b'"');
                    assert_eq!(plain_run(&s), naive(&s), "{s:?}");
                }
            }
        }
    }
}

/// A stream's scanner, primed with `first`, against serde on `next`.
fn agrees_after(first: &[u8], scanner: &ChunkScanner, next: &[u8]) {
    let mut scanner = scanner.clone();
    let scanned = scanner.scan(next).map(|s| s.chunk);
    let full = reference(next);
    match (&scanned, &full) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", String::from_utf8_lossy(next)),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "after {} scan {scanned:?} but serde {full:?} for {}",
            String::from_utf8_lossy(first),
            String::from_utf8_lossy(next)
        ),
    }
}

#[test]
fn a_stream_scanner_remembers_the_bytes_before_the_first_read_key() {
    let mut scanner = ChunkScanner::default();
    scanner.scan(VLLM[1].as_bytes()).unwrap();
    let prefix = r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"meta-llama/Llama-3.1-8B-Instruct","#;
    assert_eq!(scanner.prefix, prefix.as_bytes());
    // The next chunk starts the same way: read from `choices` on, the same value.
    let scanned = scanner.scan(VLLM[0].as_bytes()).unwrap();
    assert_eq!(
        Ok(scanned.chunk),
        reference(VLLM[0].as_bytes()).map_err(|_| ())
    );
    assert_eq!(scanner.prefix, prefix.as_bytes());
    // One that starts differently is scanned whole and becomes the reference.
    scanner.scan(VLLM[4].as_bytes()).unwrap();
    let prefix = r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"m","#;
    assert_eq!(scanner.prefix, prefix.as_bytes());
    // No read key at all, or one right after the `{` (where `}` may follow as well as a
    // key): nothing to remember.
    scanner.scan(b"{\"id\":\"x\"}").unwrap();
    assert!(scanner.prefix.is_empty());
    scanner.scan(b"{ \"choices\":[]}").unwrap();
    assert!(scanner.prefix.is_empty());
    assert!(scanner.scan(b"{ }").is_ok());
}

#[test]
fn an_error_key_at_the_top_level_is_noted() {
    let mut scanner = ChunkScanner::default();
    let error = br#"{"error":{"message":"boom","code":500}}"#;
    assert!(scanner.scan(error).unwrap().error_key);
    let nested = br#"{"choices":[{"delta":{"content":"\"error\""}}],"x":{"error":1}}"#;
    assert!(!scanner.scan(nested).unwrap().error_key);
}

/// Every fixture after every other one (the remembered prefix matches or not), and every
/// single-byte mutation of each after the fixture itself (the mutation falls inside the
/// remembered prefix, at its end, or after it): the same accept/reject and value as serde.
#[test]
fn a_primed_scanner_agrees_with_serde_on_chunks_and_their_mutations() {
    let fixtures: Vec<&[u8]> = VLLM
        .iter()
        .chain(SGLANG)
        .chain(OTHER)
        .map(|s| s.as_bytes())
        .collect();
    let replacements = b"\"\\{}[],:0-. nex";
    for first in &fixtures {
        let mut primed = ChunkScanner::default();
        primed.scan(first).unwrap();
        for next in &fixtures {
            agrees_after(first, &primed, next);
        }
        for at in 0..first.len() {
            for &byte in replacements {
                let mut mutated = first.to_vec();
                mutated[at] = byte;
                agrees_after(first, &primed, &mutated);
            }
            agrees_after(first, &primed, &first[..at]);
        }
    }
}

/// VLLM[1] with its token's body replaced by `body`.
fn token_chunk(body: &[u8]) -> Vec<u8> {
    let [head, tail] = [
        r#"{"id":"chatcmpl-3f1c","object":"chat.completion.chunk","created":1733500000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":""#,
        r#""},"logprobs":null,"finish_reason":null}]}"#,
    ];
    [head.as_bytes(), body, tail.as_bytes()].concat()
}

#[test]
fn a_text_token_of_the_remembered_shape_is_read_without_parsing() {
    let mut scanner = ChunkScanner::default();
    let first = token_chunk(b" Hello");
    scanner.scan(&first).unwrap();
    let shape = scanner.shape.as_ref().unwrap();
    assert!(shape.head.ends_with(b"\"content\":\""));
    assert_eq!(
        shape.head.len() + " Hello".len() + shape.tail.len(),
        first.len()
    );
    assert_eq!(shape.token(&token_chunk(b" world")), Some(" world"));
    // What the shape does not cover is parsed: an escape, a control character, invalid
    // UTF-8, a quote that ends the string early.
    for body in [
        &b"a\\\"b"[..],
        b"tab\there",
        b"\xff",
        b"a\"",
        b"",
        "é 😀".as_bytes(),
    ] {
        let data = token_chunk(body);
        let plain = !body.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20);
        let expected = (plain && std::str::from_utf8(body).is_ok())
            .then(|| std::str::from_utf8(body).unwrap());
        assert_eq!(shape.token(&data), expected, "{body:?}");
        agrees_after(&first, &scanner, &data);
    }
    // Only a plain token is remembered: not the finish chunk, nor an escaped token.
    let mut scanner = ChunkScanner::default();
    scanner.scan(VLLM[6].as_bytes()).unwrap();
    scanner.scan(VLLM[2].as_bytes()).unwrap();
    scanner.scan(SGLANG[2].as_bytes()).unwrap();
    scanner.scan(OTHER[1].as_bytes()).unwrap();
    assert!(scanner.shape.is_none());
    scanner.scan(SGLANG[1].as_bytes()).unwrap();
    assert!(scanner.shape.is_some());
}
