//! A request's hold on its tenant's limits, from admission to the last byte: the
//! concurrency slot, the token reservation and its settlement. It travels with the request's
//! [`crate::pipeline::tracker::Tracker`], so it ends however the request ends.

use std::sync::Arc;

use switchyard_protocol::Usage;
use tokio::time::Instant;

use super::limiter::Refusal;
use super::rate_limited;
use super::set::Tenant;
use crate::error::ApiError;

#[derive(Debug)]
pub struct Lease {
    tenant: Arc<Tenant>,
    reserved: u64,
    settled: bool,
    /// The final status, once known.
    status: Option<u16>,
}

impl Lease {
    /// Takes a concurrency slot and one request from the rate bucket.
    pub fn admit(tenant: &Arc<Tenant>) -> Result<Self, Refusal> {
        tenant.limiter.admit(Instant::now()).inspect_err(|r| {
            tenant.metrics.count_refusal(r.limit);
        })?;
        Ok(Self {
            tenant: Arc::clone(tenant),
            reserved: 0,
            settled: false,
            status: None,
        })
    }

    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// After parsing: a model outside the tenant's list is the same 404 as an unknown one;
    /// then `max_tokens` (0 when absent; usage settles it) is reserved from the token rate.
    pub fn charge(&mut self, model: &str, max_tokens: Option<u32>) -> Result<(), ApiError> {
        if !self.tenant.allows_model(model) {
            return Err(ApiError::model_not_found(model));
        }
        let wanted = u64::from(max_tokens.unwrap_or(0));
        match self.tenant.limiter.reserve(wanted, Instant::now()) {
            Ok(reserved) => {
                self.reserved = reserved;
                Ok(())
            }
            Err(refusal) => {
                self.tenant.metrics.count_refusal(refusal.limit);
                Err(rate_limited(&self.tenant, refusal))
            }
        }
    }

    /// Replaces the reservation by what the engine reported (once).
    pub fn settle(&mut self, usage: &Usage) {
        if self.settled {
            return;
        }
        self.settled = true;
        let (input, output) = (
            u64::from(usage.prompt_tokens),
            u64::from(usage.completion_tokens),
        );
        self.tenant.metrics.count_tokens(input, output);
        self.tenant
            .limiter
            .settle(self.reserved, input + output, Instant::now());
    }

    pub fn finish(&mut self, status: u16) {
        self.status = Some(status);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.tenant.limiter.release();
        let status = self.status.unwrap_or(499);
        self.tenant.metrics.count_request(status);
        if !self.settled && self.reserved > 0 {
            // No usage reported. Refused or failed before generating: give the reservation
            // back. Otherwise (a client gone mid-stream) keep it: tokens were spent.
            let used = if status >= 400 { 0 } else { self.reserved };
            self.tenant
                .limiter
                .settle(self.reserved, used, Instant::now());
        }
    }
}
