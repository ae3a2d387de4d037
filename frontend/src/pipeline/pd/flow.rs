//! The two protocols' exchanges, from the prefill request to the decode instance's first
//! event, with the fallback to an aggregated request when no prefill succeeds.

use std::sync::Arc;
use std::time::Instant;

use switchyard_runtime::Instance;

use super::exchange::{self, PrefillError};
use super::{sglang, vllm};
use crate::app::App;
use crate::config::OnPrefillFailure;
use crate::pipeline::failure::Failure;
use crate::pipeline::outcome;
use crate::pipeline::parse::ParsedRequest;
use crate::pipeline::preprocess::UpstreamRequest;
use crate::pipeline::tracker::Tracker;
use crate::pipeline::upstream::{self, Upstream};

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
        upstream::send(
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
        self.app.config.routing.disaggregation.on_prefill_failure == OnPrefillFailure::Retry
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
                native: None,
                forward: Vec::new(),
            })
            .await;
        if decoded.is_ok() {
            call.app.metrics.pd.observe_decode(started.elapsed());
        }
        return decoded;
    }
    call.fall_back(upstream).await
}

/// How one prefill instance's attempt ended.
// Built once per attempt and matched at once: boxing the big variant would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    /// The decode instance answered (or failed on its own): dispatch takes it from here.
    Decoded(Result<Upstream, Failure>),
    /// The prefill failed; `retry` says whether to try the next prefill instance.
    PrefillFailed { retry: bool },
}

/// SGLang: prefill and decode at once, sharing a bootstrap room.
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
        let decode = UpstreamRequest {
            endpoint: upstream.endpoint,
            body,
            translated: upstream.translated,
            native: None,
            forward: Vec::new(),
        };
        match together(call, prefill, decode).await {
            Attempt::Decoded(decoded) => return decoded,
            Attempt::PrefillFailed { retry: true } => continue,
            Attempt::PrefillFailed { retry: false } => break,
        }
    }
    call.fall_back(upstream).await
}

/// Sends `decode`'s body to the prefill and the decode instance at once. A prefill that fails
/// first cancels the waiting decode request (it is dropped); a decode that fails first is
/// blamed on the prefill if the prefill failed too (the room never filled).
async fn together(call: &Call<'_>, prefill: &Arc<Instance>, decode: UpstreamRequest) -> Attempt {
    let started = Instant::now();
    let prefill_call = exchange::prefill(
        call.app,
        prefill,
        decode.endpoint,
        decode.body.clone(),
        call.request_id,
    );
    let decode_call = call.decode_with(decode);
    tokio::pin!(prefill_call, decode_call);
    let failed = |error: PrefillError| Attempt::PrefillFailed {
        retry: call.prefill_failed(prefill, &error),
    };
    let attempt = tokio::select! {
        biased;
        answer = &mut prefill_call => match answer {
            Ok(_) => {
                call.app.metrics.pd.observe_prefill(started.elapsed());
                Attempt::Decoded(decode_call.await)
            }
            Err(error) => failed(error),
        },
        decoded = &mut decode_call => match (decoded, prefill_call.await) {
            (Ok(upstream), prefilled) => {
                // The decode started, so the KV arrived; the prefill's answer is still checked.
                match prefilled {
                    Ok(_) => call.app.metrics.pd.observe_prefill(started.elapsed()),
                    Err(error) => {
                        call.prefill_failed(prefill, &error);
                    }
                }
                Attempt::Decoded(Ok(upstream))
            }
            (Err(failure), Ok(_)) => Attempt::Decoded(Err(failure)),
            (Err(_), Err(error)) => failed(error),
        },
    };
    if let Attempt::Decoded(Ok(_)) = &attempt {
        call.app.metrics.pd.observe_decode(started.elapsed());
    }
    attempt
}
