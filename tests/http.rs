//! Small HTTP helpers for the tests: JSON posts and SSE collection.

use futures_util::StreamExt;
use serde_json::Value;

/// A non-streamed POST: (status, headers, JSON body or Null).
pub async fn post_json(
    url: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Value)> {
    let mut req = reqwest::Client::new().post(url).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await?;
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, headers, json))
}

/// A streamed POST read to the end: the `data:` payloads in order (including `[DONE]`).
pub async fn post_sse(
    url: &str,
    body: &Value,
) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Vec<String>)> {
    let resp = reqwest::Client::new().post(url).json(body).send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut text = String::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => break, // a transport error ends the stream; the events tell the story
        }
    }
    Ok((status, headers, sse_data(&text)))
}

/// Splits an SSE body into `data:` payloads.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// Concatenated generated text of chat or completion chunks.
pub fn stream_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| e.as_str() != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .flat_map(|v| {
            v["choices"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    c["delta"]["content"]
                        .as_str()
                        .or_else(|| c["text"].as_str())
                        .unwrap_or("")
                        .to_owned()
                })
        })
        .collect()
}

/// Text of a non-streamed chat or completion response.
pub fn response_text(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .or_else(|| v["choices"][0]["text"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// Value of a Prometheus series (first line starting with `series`), or 0.
pub async fn metric(base: &str, series: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("{base}/metrics")).await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
