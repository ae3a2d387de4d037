//! The two protocols' exchanges, from the prefill request to the decode instance's first
//! event, with the fallback to an aggregated request when no prefill succeeds.

use std::sync::Arc;
use std::time::Instant;

use switchyard_runtime::Instance;

use super::config::OnPrefillFailure;
use super::exchange::{self, PrefillError};
use super::{sglang, vllm};
use crate::app::App;
use crate::pipeline::dispatch::{self, Upstream};
use crate::pipeline::failure::Failure;
use crate::pipeline::outcome;
use crate::pipeline::parse::ParsedRequest;
use crate::pipeline::preprocess::UpstreamRequest;
use crate::pipeline::tracker::Tracker;

/// What every stage of one attempt shares.
pub struct Call<'a> {
    pub app: &'a Arc<App>,
    pub request: &'a ParsedRequest,
    pub decode: &'a Arc<Instance>,
    pub request_id: &'a str,
    pub tracker: &'a Tracker,
}

impl Call<'_> {
    async fn decode_with(&self, upstream: UpstreamRequest) -> Result<Upstream, Failure> {
        dispatch::send(
            self.app,
            self.decode,
            upstream,
            self.request.is_stream(),
            self.request_id,
            Some(self.tracker),
        )
        .await
    }

    /// Counts, logs and (for the instance's own failures) blames a failed prefill; says
    /// whether to try another prefill instance.
    fn prefill_failed(&self, prefill: &Instance, error: &PrefillError) -> bool {
        self.app.metrics.pd.prefill_failed();
        tracing::warn!(
            request_id = self.request_id,
            prefill = prefill.id(),
            decode = self.decode.id(),
            error = %error,
            "prefill stage failed"
        );
        if let PrefillError::Failed(failure) = error {
            outcome::blame(
                self.app,
                prefill,
                failure,
                outcome::request_key(self.request_id),
            );
        }
        self.app.config.disaggregation.on_prefill_failure == OnPrefillFailure::Retry
    }

    /// No prefill succeeded: the decode instance serves the whole request.
    async fn fall_back(&self, upstream: UpstreamRequest) -> Result<Upstream, Failure> {
        self.app.metrics.pd.fell_back();
        tracing::warn!(
            request_id = self.request_id,
            decode = self.decode.id(),
            "no prefill succeeded: serving the request aggregated on its decode instance"
        );
        self.decode_with(upstream).await
    }
}

/// vLLM: prefill first, then decode with the prefill's `kv_transfer_params`.
pub async fn vllm(
    call: &Call<'_>,
    prefills: &[Arc<Instance>],
    upstream: UpstreamRequest,
) -> Result<Upstream, Failure> {
    for prefill in prefills {
        let Some(body) = vllm::prefill_body(&upstream.body) else {
            break;
        };
        let started = Instant::now();
        let answer =
            exchange::prefill(call.app, prefill, upstream.endpoint, body, call.request_id).await;
        let params = answer.and_then(|a| vllm::transfer_params(&a).map_err(PrefillError::NoHandle));
        let params = match params {
            Ok(params) => params,
            Err(error) => {
                if call.prefill_failed(prefill, &error) {
                    continue;
                }
                break;
            }
        };
        call.app.metrics.pd.observe_prefill(started.elapsed());
        let Some(body) = vllm::decode_body(&upstream.body, params) else {
            break;
        };
        let started = Instant::now();
        let decoded = call
            .decode_with(UpstreamRequest {
                endpoint: upstream.endpoint,
                body,
                translated: upstream.translated,
            })
            .await;
        if decoded.is_ok() {
            call.app.metrics.pd.observe_decode(started.elapsed());
        }
        return decoded;
    }
    call.fall_back(upstream).await
}

/// SGLang: prefill and decode at once, sharing a bootstrap room. A prefill that fails first
/// cancels the waiting decode request (it is dropped) before anything else is tried.
pub async fn sglang(
    call: &Call<'_>,
    prefills: &[Arc<Instance>],
    upstream: UpstreamRequest,
) -> Result<Upstream, Failure> {
    for prefill in prefills {
        let (Some(host), Some(port)) = (
            sglang::host_of(&prefill.spec.url),
            prefill.spec.bootstrap_port,
        ) else {
            continue;
        };
        let room = sglang::new_room();
        let Some(body) = sglang::with_bootstrap(&upstream.body, &host, port, room) else {
            break;
        };
        let started = Instant::now();
        let prefill_call = exchange::prefill(
            call.app,
            prefill,
            upstream.endpoint,
            body.clone(),
            call.request_id,
        );
        let decode_call = call.decode_with(UpstreamRequest {
            endpoint: upstream.endpoint,
            body,
            translated: upstream.translated,
        });
        tokio::pin!(prefill_call, decode_call);
        let decoded = tokio::select! {
            biased;
            answer = &mut prefill_call => match answer {
                Ok(_) => {
                    call.app.metrics.pd.observe_prefill(started.elapsed());
                    Some(decode_call.await)
                }
                Err(error) => {
                    if call.prefill_failed(prefill, &error) {
                        continue;
                    }
                    None
                }
            },
            decoded = &mut decode_call => {
                if decoded.is_ok() {
                    // The decode side started, so the KV arrived; the prefill's own answer is
                    // still read and checked.
                    match prefill_call.await {
                        Ok(_) => call.app.metrics.pd.observe_prefill(started.elapsed()),
                        Err(error) => {
                            call.prefill_failed(prefill, &error);
                        }
                    }
                }
                Some(decoded)
            }
        };
        match decoded {
            Some(decoded) => {
                if decoded.is_ok() {
                    call.app.metrics.pd.observe_decode(started.elapsed());
                }
                return decoded;
            }
            None => break,
        }
    }
    call.fall_back(upstream).await
}
