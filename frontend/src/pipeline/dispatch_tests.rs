//! Dispatch driven without sockets: the worker client's transport is a set of scripted fake
//! workers ([`FakeWorkers`]), so each test says what every instance answers and checks whom
//! dispatch asked, in which order, and whom it blamed.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use switchyard_runtime::{Instance, InstanceSpec, WorkerClient};

use super::dispatch;
use crate::admission::PanicPolicy;
use crate::app::App;
use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::pipeline::fake_worker::{event, Answer, FakeWorkers, Part, Reply};
use crate::pipeline::health_filter;
use crate::pipeline::parse::{self, ParsedRequest};
use crate::pipeline::preprocess::Prepared;
use crate::pipeline::relay::{self, RelayContext};
use crate::pipeline::tracker::Tracker;
use crate::pipeline::upstream::Upstream;
use crate::pipeline::Endpoint;

/// An app whose instances `ids` of model `m` (at `http://<id>`) are fake workers.
struct Rig {
    app: Arc<App>,
    workers: Arc<FakeWorkers>,
}

fn rig(ids: &[&str], tune: impl FnOnce(&mut ServeConfig)) -> Rig {
    let mut config = ServeConfig::default();
    tune(&mut config);
    let registry = Arc::new(switchyard_runtime::Registry::default());
    for id in ids {
        registry.apply(switchyard_runtime::DiscoveryEvent::Upsert(Box::new(
            InstanceSpec::new(*id, "m", format!("http://{id}")),
        )));
    }
    let plugins = crate::plugins::PluginSet::new(Default::default(), Default::default(), None);
    let workers = Arc::new(FakeWorkers::default());
    let client = WorkerClient::from_transport(Arc::clone(&workers) as _);
    let app = App::with_client(config, registry, Arc::new(plugins), client).unwrap();
    Rig { app, workers }
}

impl Rig {
    fn instance(&self, id: &str) -> Arc<Instance> {
        let topology = self.app.registry.topology();
        let pool = topology.model("m").unwrap();
        Arc::clone(pool.iter().find(|i| i.id() == id).unwrap())
    }

    async fn request(&self, body: &str) -> ParsedRequest {
        parse::parse(
            http::HeaderMap::new(),
            Full::new(Bytes::from(body.to_owned())),
            Endpoint::Chat,
            1 << 20,
            &self.app.body_budget,
        )
        .await
        .unwrap()
    }

    /// Dispatches `request` over the instances ranked in `order`.
    async fn dispatch(
        &self,
        request: &ParsedRequest,
        order: &[&str],
        tracker: &Tracker,
    ) -> Result<Upstream, ApiError> {
        let topology = self.app.registry.topology();
        let pool = topology.model("m").unwrap();
        let routable = health_filter::routable(pool, "m", PanicPolicy::FailFast).unwrap();
        let ranked: Vec<usize> = order
            .iter()
            .map(|id| {
                routable
                    .instances
                    .iter()
                    .position(|i| i.id() == *id)
                    .unwrap()
            })
            .collect();
        let prepared = Prepared::default();
        dispatch(
            &self.app, request, &prepared, &routable, &ranked, "r", tracker,
        )
        .await
    }

    /// [`Self::dispatch`] of a non-streamed chat request.
    async fn chat(&self, order: &[&str]) -> Result<Upstream, ApiError> {
        let request = self.request(CHAT).await;
        let tracker = Tracker::start(&self.app, Endpoint::Chat);
        self.dispatch(&request, order, &tracker).await
    }
}

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
const ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

/// The instance and status of a whole answer.
fn answered(upstream: Upstream) -> (String, u16) {
    match upstream {
        Upstream::Complete {
            instance, status, ..
        } => (instance.id().to_owned(), status.as_u16()),
        Upstream::Stream(start) => (start.instance.id().to_owned(), 200),
    }
}

fn blamed(rig: &Rig, id: &str) -> bool {
    rig.instance(id).last_error().is_some()
}

#[tokio::test]
async fn a_retryable_failure_moves_on_to_the_next_ranked_instance() {
    let rig = rig(&["a", "b", "c"], |_| {});
    rig.workers.reply("c", Reply::Refused);
    rig.workers.reply("a", Reply::Whole(200, ANSWER));
    let upstream = rig.chat(&["c", "a", "b"]).await.unwrap();
    assert_eq!(answered(upstream), ("a".to_owned(), 200));
    assert_eq!(
        rig.workers.hosts(),
        ["c", "a"],
        "in rank order, not pool order"
    );
    assert!(blamed(&rig, "c"), "the refused connection counts against c");
    assert!(!blamed(&rig, "a") && !blamed(&rig, "b"));
}

#[tokio::test]
async fn a_spent_retry_budget_stops_the_retries() {
    let rig = rig(&["a", "b"], |c| {
        c.reliability.retry_budget.percent = 0;
        c.reliability.retry_budget.min_concurrent = 0;
    });
    rig.workers.reply("a", Reply::Refused);
    rig.workers.reply("b", Reply::Whole(200, ANSWER));
    let error = rig.chat(&["a", "b"]).await.err().unwrap();
    assert_eq!(error.status, 502, "a's failure is the answer");
    assert_eq!(rig.workers.hosts(), ["a"], "b was never tried");
    assert_eq!(rig.app.metrics.retry_budget_exhausted.get(), 1);
}

#[tokio::test]
async fn a_4xx_is_the_clients_answer_not_retried_and_not_blamed() {
    let rig = rig(&["a", "b"], |_| {});
    let refusal = r#"{"error":{"message":"bad request","type":"invalid_request_error"}}"#;
    rig.workers.reply("a", Reply::Whole(400, refusal));
    let upstream = rig.chat(&["a", "b"]).await.unwrap();
    assert_eq!(answered(upstream), ("a".to_owned(), 400));
    assert_eq!(rig.workers.hosts(), ["a"]);
    assert!(!blamed(&rig, "a"));
}

#[tokio::test]
async fn a_response_over_the_size_limit_is_not_retried_and_not_blamed() {
    let rig = rig(&["a", "b"], |c| {
        c.reliability.upstream.max_response_bytes = 64;
    });
    rig.workers.reply("a", Reply::Whole(200, ANSWER));
    rig.workers.reply("b", Reply::Whole(200, ANSWER));
    let error = rig.chat(&["a", "b"]).await.err().unwrap();
    assert_eq!(error.code, Some("response_too_large"), "{error:?}");
    assert_eq!(
        rig.workers.hosts(),
        ["a"],
        "the client's choice, not re-run"
    );
    assert!(!blamed(&rig, "a"));
}

#[tokio::test]
async fn a_5xx_is_blamed_on_its_instance_once_another_serves_the_request() {
    let rig = rig(&["a", "b"], |_| {});
    rig.workers.reply("a", Reply::Whole(500, "engine died"));
    rig.workers.reply("b", Reply::Whole(200, ANSWER));
    let upstream = rig.chat(&["a", "b"]).await.unwrap();
    assert_eq!(answered(upstream), ("b".to_owned(), 200));
    assert_eq!(rig.workers.hosts(), ["a", "b"]);
    assert!(blamed(&rig, "a"));
    assert!(!blamed(&rig, "b"));

    // Reproduced by the next instance, a 5xx is the request's: nobody is blamed.
    let rig = self::rig(&["a", "b", "c"], |_| {});
    rig.workers.reply("a", Reply::Whole(500, "bad input"));
    rig.workers.reply("b", Reply::Whole(500, "bad input"));
    let error = rig.chat(&["a", "b", "c"]).await.err().unwrap();
    assert_eq!(error.status, 500);
    assert_eq!(rig.workers.hosts(), ["a", "b"]);
    assert!(!blamed(&rig, "a") && !blamed(&rig, "b"));
}

#[tokio::test]
async fn a_full_pool_is_shed_once_by_admission_before_any_worker_is_asked() {
    let rig = rig(&["a"], |c| {
        c.reliability.overload.max_in_flight_per_instance = 1;
    });
    let _busy = rig.instance("a").start_request();
    let error = rig.chat(&["a"]).await.err().unwrap();
    assert_eq!(error.status, 503);
    assert!(rig.workers.hosts().is_empty());
    assert_eq!(rig.app.metrics.shed.get(), 1, "counted once");
}

fn chunk(text: &str) -> String {
    format!(
        r#"{{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}]}}"#
    )
}

#[tokio::test]
async fn a_stream_broken_mid_way_resumes_on_another_instance_with_the_text_so_far() {
    let rig = rig(&["a", "b"], |c| c.reliability.migration_limit = 1);
    rig.workers.reply(
        "a",
        Reply::Stream(vec![
            Part::Data(event(&chunk(" a"))),
            Part::Data(event(&chunk(" b"))),
            Part::Break,
        ]),
    );
    let rest = r#"{"id":"other","object":"chat.completion.chunk","created":9,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":" c"},"finish_reason":"stop"}]}"#;
    rig.workers.reply(
        "b",
        Reply::Stream(vec![
            Part::Data(event(rest)),
            Part::Data("data: [DONE]\n\n"),
        ]),
    );
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":10}"#;
    let request = rig.request(body).await;
    let mut tracker = Tracker::start(&rig.app, Endpoint::Chat);
    let upstream = rig.dispatch(&request, &["a", "b"], &tracker).await.unwrap();
    let context = RelayContext {
        permit: None,
        request_id: "r",
    };
    let response: http::Response<Answer> =
        relay::respond(&rig.app, &request, upstream, tracker.take(), context);
    let text = response.into_body().text().await;

    assert_eq!(rig.workers.hosts(), ["a", "b"]);
    let continuation = &rig.workers.sent()[1];
    assert_eq!(continuation.path, "/v1/chat/completions");
    assert_eq!(
        continuation.body["messages"],
        json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": " a b"}]),
        "the continuation carries the text the client already has"
    );
    assert_eq!(continuation.body["continue_final_message"], true);
    assert_eq!(continuation.body["max_tokens"], 8);
    assert!(!text.contains("error"), "{text}");
    let contents: Vec<String> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            assert_eq!(v["id"], "c1", "one stream: {d}");
            v["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(contents.concat(), " a b c");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(rig.app.metrics.migrations.get(), 1);
    assert!(blamed(&rig, "a"));
}
