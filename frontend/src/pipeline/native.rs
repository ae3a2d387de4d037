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
use switchyard_runtime::{Api, Instance};

use super::parse::ParsedRequest;
use super::preprocess::UpstreamRequest;
use super::Endpoint;

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
    })
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
}
