//! The edge driven through [`Frontend`] without a socket: in-memory request bodies, one
//! `oneshot` each. The app has static workers that are never contacted: every case here is
//! answered before dispatch.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::Value;
use tower::ServiceExt;

use super::Frontend;
use crate::app::App;
use crate::config::{parse_worker_flag, ServeConfig};
use crate::http::REQUEST_ID_HEADER;

const CHAT: &str = "/v1/chat/completions";

/// An app serving model `m` from one static worker on an unreachable port; `tune` adjusts
/// the config.
fn frontend(tune: impl FnOnce(&mut ServeConfig)) -> Frontend {
    let mut config = ServeConfig::default();
    config
        .workers
        .push(parse_worker_flag("m=http://127.0.0.1:9").unwrap());
    tune(&mut config);
    let registry = Arc::new(switchyard_runtime::Registry::default());
    registry.apply(switchyard_runtime::DiscoveryEvent::Snapshot(
        config.instance_specs(),
    ));
    let plugins = crate::plugins::PluginSet::new(Default::default(), Default::default(), None);
    Frontend::new(App::new(config, registry, Arc::new(plugins)).unwrap())
}

fn request(method: Method, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap()
}

/// Serves `request` and returns status, request id header and the body as JSON.
async fn serve<B>(frontend: Frontend, request: Request<B>) -> (StatusCode, String, Value)
where
    B: crate::http::RequestBody + Send + 'static,
{
    let response = frontend.oneshot(request).await.unwrap();
    let status = response.status();
    let id = response
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, id, json)
}

/// OpenAI's error shape: message, type, and `param`/`code` present (maybe null).
fn assert_openai_error(v: &Value) {
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
}

fn chat(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
}

#[tokio::test]
async fn an_unknown_path_is_a_404_in_openais_shape() {
    let (status, _, body) = serve(frontend(|_| {}), request(Method::GET, "/v2/nothing", "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_openai_error(&body);
    assert_eq!(body["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn a_known_path_with_the_wrong_method_is_a_405() {
    let (status, _, body) = serve(frontend(|_| {}), request(Method::GET, CHAT, "")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_openai_error(&body);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("GET") && m.contains(CHAT)),
        "{body}"
    );
}

#[tokio::test]
async fn the_messages_route_answers_in_anthropics_shape() {
    let (status, _, body) = serve(
        frontend(|_| {}),
        request(Method::POST, "/v1/messages", "{\"model\":"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");

    let (status, _, body) = serve(frontend(|_| {}), request(Method::GET, "/v1/messages", "")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["type"], "error", "{body}");
}

#[tokio::test]
async fn every_response_carries_the_request_id_the_client_sent_or_a_fresh_one() {
    let mut sent = request(Method::GET, "/nowhere", "");
    sent.headers_mut()
        .insert(REQUEST_ID_HEADER, "client-id-7".parse().unwrap());
    let (_, id, _) = serve(frontend(|_| {}), sent).await;
    assert_eq!(id, "client-id-7");

    let (_, minted, _) = serve(frontend(|_| {}), request(Method::GET, "/live", "")).await;
    assert_eq!(minted.len(), 32, "{minted}");
    assert!(minted.bytes().all(|b| b.is_ascii_hexdigit()), "{minted}");

    // An id that is too long is not echoed (it would end up in logs and worker requests).
    let mut long = request(Method::GET, "/live", "");
    long.headers_mut()
        .insert(REQUEST_ID_HEADER, "x".repeat(200).parse().unwrap());
    let (_, replaced, _) = serve(frontend(|_| {}), long).await;
    assert_eq!(replaced.len(), 32, "{replaced}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_request_too_large() {
    let small = |c: &mut ServeConfig| c.http.limits.max_body_bytes = 64;
    let big = chat(&"m".repeat(100));
    // Declared too large by Content-Length: refused before reading.
    let mut declared = request(Method::POST, CHAT, &big);
    declared
        .headers_mut()
        .insert("content-length", big.len().into());
    let (status, _, body) = serve(frontend(small), declared).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_openai_error(&body);
    assert_eq!(body["error"]["code"], "request_too_large");

    // No length (chunked): refused once the frames add up to more than the limit.
    let frames = big
        .as_bytes()
        .chunks(16)
        .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::copy_from_slice(c))))
        .collect::<Vec<_>>();
    let chunked = Request::post(CHAT)
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let (status, _, body) = serve(frontend(small), chunked).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "request_too_large");
}

#[tokio::test]
async fn invalid_json_is_a_400() {
    for bad in ["{\"model\":", "[1,2]", ""] {
        let (status, _, body) = serve(frontend(|_| {}), request(Method::POST, CHAT, bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_openai_error(&body);
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn a_body_that_fails_mid_read_is_a_400() {
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(Bytes::from_static(b"{\"model\":"))),
        Err(std::io::Error::other("connection reset")),
    ];
    let failing = Request::post(CHAT)
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let (status, _, body) = serve(frontend(|_| {}), failing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("could not read the request body"),
        "{body}"
    );
}

#[tokio::test]
async fn a_model_without_instances_is_a_404_model_not_found() {
    let (status, _, body) = serve(
        frontend(|_| {}),
        request(Method::POST, CHAT, &chat("no-such-model")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_openai_error(&body);
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(body["error"]["param"], "model");
}

#[tokio::test]
async fn the_service_is_always_ready_and_clones_share_one_app() {
    let mut frontend = frontend(|_| {});
    let clone = frontend.clone();
    assert!(Arc::ptr_eq(frontend.app(), clone.app()));
    let ready = tower::Service::<Request<Full<Bytes>>>::poll_ready(
        &mut frontend,
        &mut std::task::Context::from_waker(std::task::Waker::noop()),
    );
    assert!(matches!(ready, std::task::Poll::Ready(Ok(()))));
    let (status, _, body) = serve(clone, request(Method::GET, "/v1/models", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["id"], "m", "{body}");
}
