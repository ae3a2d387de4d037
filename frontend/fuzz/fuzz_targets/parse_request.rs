//! Request parsing: `pipeline::parse::decode` on arbitrary bytes, for each endpoint.
//!
//! The frontend's own `parse.rs` and `error.rs` are compiled in as modules (not the whole
//! `switchyard` crate), so the sanitizer build does not instrument wasmtime and the other
//! heavy dependencies the parser never touches. Invariants: no panic, no abort (stack
//! overflow on deep nesting), and every rejection is a 4xx.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/error.rs"]
mod error;

/// `parse.rs` names the endpoint as `super::Endpoint` (the crate root here).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

#[allow(dead_code)]
#[path = "../../src/pipeline/parse.rs"]
mod parse;

use parse::{decode, TypedRequest};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let endpoint = match selector % 3 {
        0 => Endpoint::Chat,
        1 => Endpoint::Completions,
        _ => Endpoint::Embeddings,
    };
    match decode(endpoint, body) {
        Ok(typed) => {
            // A decoded request re-encodes (the frontend re-serializes streams and
            // translated requests).
            let encoded = match &typed {
                TypedRequest::Chat(r) => serde_json::to_vec(r),
                TypedRequest::Completion(r) => serde_json::to_vec(r),
                TypedRequest::Embedding(r) => serde_json::to_vec(r),
            };
            assert!(encoded.is_ok());
        }
        Err(e) => assert!((400..500).contains(&e.status), "{e:?}"),
    }
});
