//! Native passthrough of the agent APIs (OpenAI Responses, Anthropic Messages).
//!
//! An agent-API request is validated and translated onto chat before routing, so every
//! stage (tenant charge, candidates, prefix hashes, plugins, flow control) sees one kind of
//! request. The choice of body is made per attempt, after selection: an instance that lists
//! the API (`apis:`) gets the client's bytes on the API's own path; any other instance gets
//! the translation. Routing therefore never narrows the candidates to the native-capable
//! ones — a pool that mixes engines keeps balancing over all of them, a retry may land on
//! either kind, and adding `apis:` to a worker changes how it is spoken to, never how much
//! traffic it gets.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use switchyard_runtime::{Api, Instance};

use super::parse::ParsedRequest;
use super::preprocess::UpstreamRequest;
use super::Endpoint;

/// Client headers sent on to the worker with a native request.
pub type Forwarded = Vec<(HeaderName, HeaderValue)>;

/// What a native Messages request keeps of the client's headers: the API version and beta
/// flags, which choose the request's semantics (engines that ignore them lose nothing).
/// Never the client's key — `x-api-key` or `Authorization` is the client's credential for
/// Switchyard (a tenant key), not for the worker. The worker gets its own configured key,
/// as `Authorization: Bearer`: the form vLLM's and SGLang's API-key middleware check on
/// every `/v1` route, `/v1/messages` included.
static MESSAGES_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
];

/// The client's own request on an agent API.
#[derive(Debug, Clone)]
pub struct NativeRequest {
    pub api: Api,
    /// The body exactly as the client sent it (it passed the API's own validation).
    pub raw: Bytes,
}

/// The native request for `instance`, when the request came on an agent API it serves.
pub fn upstream_request(request: &ParsedRequest, instance: &Instance) -> Option<UpstreamRequest> {
    let native = request.native.as_ref()?;
    instance.spec.serves(native.api).then(|| UpstreamRequest {
        // The endpoint stays chat for the pipeline's bookkeeping; `native` picks the path.
        endpoint: Endpoint::Chat,
        body: native.raw.clone(),
        translated: false,
        native: Some(native.api),
        forward: forwarded(native.api, &request.headers),
    })
}

/// The client headers a native request to `api` carries on (every value of each, in order).
pub fn forwarded(api: Api, headers: &HeaderMap) -> Forwarded {
    let names: &[HeaderName] = match api {
        Api::Messages => &MESSAGES_HEADERS,
        _ => &[],
    };
    names
        .iter()
        .flat_map(|name| {
            headers
                .get_all(name)
                .iter()
                .map(move |value| (name.clone(), value.clone()))
        })
        .collect()
}

/// The worker path an upstream request goes to.
pub fn path(upstream: &UpstreamRequest) -> &'static str {
    match upstream.native {
        Some(api) => api.path(),
        None => upstream.endpoint.path(),
    }
}

/// Marks a response whose body is already in the client's API (a native answer, or a
/// worker's own error relayed from a native attempt): the agent-API layer must not
/// translate or reshape it.
#[derive(Debug, Clone, Copy)]
pub struct NativeAnswer;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse::decode;
    use http::HeaderMap;
    use switchyard_runtime::InstanceSpec;

    fn request(native: Option<Api>) -> ParsedRequest {
        let chat = br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#;
        ParsedRequest {
            endpoint: Endpoint::Chat,
            raw: Bytes::from_static(chat),
            typed: decode(Endpoint::Chat, chat).unwrap(),
            headers: HeaderMap::new(),
            reservation: Default::default(),
            native: native.map(|api| NativeRequest {
                api,
                raw: Bytes::from_static(br#"{"model":"m","input":"x"}"#),
            }),
        }
    }

    fn instance(apis: &[&str]) -> Instance {
        let mut spec = InstanceSpec::new("i", "m", "http://h:1");
        spec.apis = apis.iter().map(|a| (*a).to_owned()).collect();
        Instance::new(spec, None)
    }

    #[test]
    fn only_an_instance_serving_the_api_gets_the_clients_bytes() {
        let native = request(Some(Api::Responses));
        let up = upstream_request(&native, &instance(&["responses"])).unwrap();
        assert_eq!(
            (path(&up), &up.body[..]),
            ("/v1/responses", &br#"{"model":"m","input":"x"}"#[..])
        );
        assert!(upstream_request(&native, &instance(&["messages"])).is_none());
        assert!(upstream_request(&native, &instance(&[])).is_none());
        assert!(upstream_request(&request(None), &instance(&["responses"])).is_none());
    }

    #[test]
    fn a_native_messages_request_carries_the_api_version_and_betas_but_never_the_clients_key() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "tools-2024-04-04"),
            ("anthropic-beta", "prompt-caching-2024-07-31"),
            ("x-api-key", "sk-tenant"),
            ("authorization", "Bearer sk-tenant"),
            ("x-other", "1"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let got: Vec<(String, String)> = forwarded(Api::Messages, &headers)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        let want = [
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "tools-2024-04-04"),
            ("anthropic-beta", "prompt-caching-2024-07-31"),
        ];
        assert_eq!(
            got,
            want.map(|(n, v)| (n.to_owned(), v.to_owned())).to_vec()
        );
        // Responses has no such headers; nothing of the client's goes to the worker.
        assert!(forwarded(Api::Responses, &headers).is_empty());
        let mut native = request(Some(Api::Messages));
        native.headers = headers;
        let up = upstream_request(&native, &instance(&["messages"])).unwrap();
        assert_eq!(up.forward.len(), 3);
    }
}
