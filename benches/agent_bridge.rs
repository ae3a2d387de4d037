//! CPU cost of serving a streamed request through the agent-API bridges: a 16-token chat
//! stream, as the relay sends it (one frame per event), rewritten into the Responses and the
//! Messages event streams the way the frontend feeds them ([`RelayFrames`]), next to
//! re-framing the same chat stream alone.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchyard_protocol::bridge::chat_out::Chunk;
use switchyard_protocol::bridge::chunk_scan::scan;
use switchyard_protocol::bridge::messages_stream::MessagesStream;
use switchyard_protocol::bridge::relay_frames::RelayFrames;
use switchyard_protocol::bridge::responses_stream::ResponsesStream;
use switchyard_protocol::bridge::StreamBridge;
use switchyard_protocol::sse::Framer;

/// 16 content chunks, the finish chunk, the usage chunk and `[DONE]`.
fn chat_stream() -> Vec<u8> {
    let mut s = Vec::new();
    let head = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":["#;
    for i in 0..16 {
        let role = if i == 0 { r#""role":"assistant","# } else { "" };
        s.extend_from_slice(
            format!("data: {head}{{\"index\":0,\"delta\":{{{role}\"content\":\" word{i}\"}},\"finish_reason\":null}}]}}\n\n").as_bytes(),
        );
    }
    s.extend_from_slice(
        format!("data: {head}{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"length\"}}]}}\n\n")
            .as_bytes(),
    );
    s.extend_from_slice(format!("data: {head}],\"usage\":{{\"prompt_tokens\":9,\"completion_tokens\":16,\"total_tokens\":25}}}}\n\n").as_bytes());
    s.extend_from_slice(b"data: [DONE]\n\n");
    s
}

/// The stream as the relay's frames: one whole event each.
fn frames(data: &[u8]) -> Vec<Vec<u8>> {
    data.split_inclusive(|&b| b == b'\n')
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|lines| lines.concat())
        .collect()
}

/// Re-framing alone (for scale: what a consumer of the raw bytes pays).
fn reframe(data: &[u8]) -> usize {
    let mut framer = Framer::default();
    let mut n = 0;
    framer.push(black_box(data));
    while let Ok(Some(event)) = framer.next_event() {
        n += event.data.len();
    }
    n
}

fn bridge(frames: &[Vec<u8>], mut bridge: Box<dyn StreamBridge>) -> usize {
    let mut feed = RelayFrames::default();
    let mut out = BytesMut::new();
    let mut n = 0;
    for frame in frames {
        feed.feed(black_box(frame), bridge.as_mut(), &mut out);
        // The body hands each event's bytes to hyper as one frame.
        n += out.split().len();
    }
    n
}

fn bridges(c: &mut Criterion) {
    let data = chat_stream();
    let frames = frames(&data);
    assert_eq!(frames.len(), 19);
    let responses: serde_json::Value =
        serde_json::json!({"model":"m","input":"hi","max_output_tokens":16,"stream":true});
    let responses = serde_json::from_value(responses).unwrap_or_else(|e| panic!("{e}"));
    let messages: serde_json::Value = serde_json::json!({"model":"m","max_tokens":16,"stream":true,
        "messages":[{"role":"user","content":"hi"}]});
    let messages = serde_json::from_value(messages).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("agent_bridge_16_tokens");
    group.throughput(Throughput::Elements(16));
    group.bench_function("chat_reframe_only", |b| b.iter(|| reframe(&data)));
    // The share of the bridges' cost that is decoding the chat chunks: the scanner the
    // bridges use, and serde's full decode of the same chunks for comparison.
    group.bench_function("chat_reframe_and_scan", |b| {
        b.iter(|| {
            let mut framer = Framer::default();
            framer.push(black_box(&data));
            let mut n = 0;
            while let Ok(Some(event)) = framer.next_event() {
                if let Ok(chunk) = scan(&event.data) {
                    n += chunk.choices.len();
                }
            }
            n
        })
    });
    group.bench_function("chat_reframe_and_decode", |b| {
        b.iter(|| {
            let mut framer = Framer::default();
            framer.push(black_box(&data));
            let mut n = 0;
            while let Ok(Some(event)) = framer.next_event() {
                if let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(&event.data) {
                    n += chunk.choices.len();
                }
            }
            n
        })
    });
    group.bench_function("responses", |b| {
        b.iter(|| bridge(&frames, Box::new(ResponsesStream::new(&responses))))
    });
    group.bench_function("messages", |b| {
        b.iter(|| bridge(&frames, Box::new(MessagesStream::new(&messages))))
    });
    group.finish();
}

criterion_group!(benches, bridges);
criterion_main!(benches);
