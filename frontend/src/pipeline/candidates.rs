//! Stage 3 — candidates: the discovery snapshot's instances for the requested model that can
//! serve the request as asked.

use std::sync::Arc;

use switchyard_runtime::lora::Catalog;
use switchyard_runtime::{Instance, Registry, WorkerApi};

use super::parse::{ParsedRequest, TypedRequest};
use crate::error::ApiError;
use crate::translate;

/// The instances of the request's model (healthy or not); 404 if the model is unknown, 503
/// `model_unavailable` if discovery declares it but it has no instance (a pool scaling up or
/// rolling out).
///
/// A chat request that asks for something a rendered prompt cannot carry (tools, structured
/// output, chat log probabilities) is not sent to completions-only workers: the translation
/// would drop the field and answer as if it had never been asked. When only such workers
/// serve the model, the request fails with a 400 naming the field instead.
/// A request for a configured LoRA adapter gets its base model's instances.
pub fn for_request(
    registry: &Registry,
    adapters: &Catalog,
    request: &ParsedRequest,
) -> Result<Arc<[Arc<Instance>]>, ApiError> {
    let model = request.model();
    let all =
        crate::lora::route::instances(&registry.topology(), adapters, model).ok_or_else(|| {
            if registry.declared.declares(model) {
                ApiError::model_unavailable(model)
            } else {
                ApiError::model_not_found(model)
            }
        })?;
    // Prefill-only instances take part only through the disaggregation stage (`pd`).
    let all = if all.iter().all(|i| i.spec.role.decodes()) {
        all
    } else {
        all.iter()
            .filter(|i| i.spec.role.decodes())
            .cloned()
            .collect()
    };
    let TypedRequest::Chat(chat) = &request.typed else {
        return Ok(all);
    };
    let Some(field) = translate::lost_in_translation(chat) else {
        return Ok(all);
    };
    if !all.iter().any(|i| i.spec.api == WorkerApi::Completions) {
        return Ok(all);
    }
    let capable: Arc<[Arc<Instance>]> = all
        .iter()
        .filter(|i| i.spec.api != WorkerApi::Completions)
        .cloned()
        .collect();
    if capable.is_empty() {
        return Err(ApiError::invalid_request(format!(
            "`{field}` is not supported for model `{model}`: its workers serve only the \
             completions API, and the chat template's prompt cannot carry `{field}`. Remove it, \
             or serve the model from a chat-capable worker."
        ))
        .with_param(field)
        .with_code("unsupported_parameter"));
    }
    Ok(capable)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::HeaderMap;
    use switchyard_runtime::{DiscoveryEvent, InstanceSpec};

    use super::*;
    use crate::pipeline::parse::decode;
    use crate::pipeline::Endpoint;

    fn chat(model: &str) -> ParsedRequest {
        let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"x"}}]}}"#);
        ParsedRequest {
            endpoint: Endpoint::Chat,
            raw: Bytes::from(body.clone()),
            typed: decode(Endpoint::Chat, body.as_bytes()).unwrap(),
            headers: HeaderMap::new(),
            reservation: Default::default(),
            native: None,
        }
    }

    #[test]
    fn a_declared_model_without_instances_is_unavailable_and_an_unknown_one_not_found() {
        let registry = Registry::default();
        registry.apply_from(
            "kubernetes",
            DiscoveryEvent::Models(vec!["scaling".into(), "served".into()]),
        );
        registry.apply_from(
            "kubernetes",
            DiscoveryEvent::Snapshot(vec![InstanceSpec::new(
                "ns/p/a",
                "served",
                "http://10.0.0.1:8000",
            )]),
        );
        let adapters = switchyard_runtime::lora::Catalog::default();
        assert_eq!(
            for_request(&registry, &adapters, &chat("served"))
                .unwrap()
                .len(),
            1
        );

        let unavailable = for_request(&registry, &adapters, &chat("scaling")).unwrap_err();
        assert_eq!(unavailable.status, 503);
        assert_eq!(unavailable.code, Some("model_unavailable"));
        assert!(unavailable.retry_after.is_some(), "503 carries Retry-After");

        let missing = for_request(&registry, &adapters, &chat("nope")).unwrap_err();
        assert_eq!(
            (missing.status, missing.code),
            (404, Some("model_not_found"))
        );
    }
}
