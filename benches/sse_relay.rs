//! SSE re-framing cost per event, whole and split into small network reads.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchyard_protocol::sse::Framer;

fn stream(events: usize) -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..events {
        s.extend_from_slice(format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}]}}\n\n").as_bytes());
    }
    s.extend_from_slice(b"data: [DONE]\n\n");
    s
}

fn reframe(c: &mut Criterion) {
    let data = stream(16);
    let mut group = c.benchmark_group("sse_reframe_16_events");
    group.throughput(Throughput::Elements(17));
    group.bench_function("one_read", |b| {
        b.iter(|| {
            let mut f = Framer::default();
            f.push(black_box(&data));
            let mut n = 0;
            while let Ok(Some(e)) = f.next_event() {
                n += e.data.len();
            }
            n
        })
    });
    group.bench_function("64_byte_reads", |b| {
        b.iter(|| {
            let mut f = Framer::default();
            let mut n = 0;
            for chunk in data.chunks(64) {
                f.push(black_box(chunk));
                while let Ok(Some(e)) = f.next_event() {
                    n += e.data.len();
                }
            }
            n
        })
    });
    // Worst case for a framer that rescans its buffer on every push: each byte is a read.
    group.bench_function("1_byte_reads", |b| {
        b.iter(|| {
            let mut f = Framer::default();
            let mut n = 0;
            for chunk in data.chunks(1) {
                f.push(black_box(chunk));
                while let Ok(Some(e)) = f.next_event() {
                    n += e.data.len();
                }
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, reframe);
criterion_main!(benches);
