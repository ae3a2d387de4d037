//! The tenant gate at the HTTP edge, before any body is read: authenticate every `/v1/*`
//! request, admit generating ones against the request rate and concurrency, and stamp the
//! rate-limit headers on whatever the answer turns out to be.

use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Method, Response};

use super::{headers, rate_limited, Lease, Tenant, Tenants};
use crate::body::Body;
use crate::error::ApiError;

/// What the edge knows about the caller of one request.
#[derive(Debug, Default)]
pub struct Caller {
    pub tenant: Option<Arc<Tenant>>,
    /// Held by generating requests until their last byte.
    pub lease: Option<Lease>,
}

/// Paths whose POSTs generate (and so count against the request rate).
fn generates(method: &Method, path: &str) -> bool {
    method == Method::POST
        && matches!(
            path,
            "/v1/chat/completions"
                | "/v1/completions"
                | "/v1/embeddings"
                | "/v1/responses"
                | "/v1/messages"
        )
}

/// Lets the request through (with its tenant and lease), or answers it: 401 or 429 in the
/// shape of the API the path belongs to.
pub fn gate(
    tenants: &Tenants,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Caller, Box<Response<Body>>> {
    if !path.starts_with("/v1/") {
        return Ok(Caller::default());
    }
    let tenant = match tenants.authenticate(headers) {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return Ok(Caller::default()),
        Err(error) => {
            tracing::debug!(path, "request without a valid API key");
            return Err(Box::new(refuse(method, path, &error, None)));
        }
    };
    if !generates(method, path) {
        return Ok(Caller {
            tenant: Some(tenant),
            lease: None,
        });
    }
    match Lease::admit(&tenant) {
        Ok(lease) => Ok(Caller {
            tenant: Some(tenant),
            lease: Some(lease),
        }),
        Err(refusal) => {
            tracing::debug!(tenant = %tenant.id, limit = refusal.limit.label(), "rate limited");
            let error = rate_limited(&tenant, refusal);
            Err(Box::new(refuse(method, path, &error, Some(&tenant))))
        }
    }
}

/// Adds the caller's `x-ratelimit-*` headers to `response`.
pub fn stamp(tenant: Option<&Tenant>, response: &mut Response<Body>) {
    if let Some(tenant) = tenant {
        headers::stamp(tenant, response.headers_mut());
    }
}

fn refuse(
    method: &Method,
    path: &str,
    error: &ApiError,
    tenant: Option<&Tenant>,
) -> Response<Body> {
    let mut response = if path == "/v1/messages" {
        crate::agent_api::messages::error_response(error)
    } else {
        crate::http::error_response(error)
    };
    stamp(tenant, &mut response);
    if method == Method::POST {
        // The body is left unread: the connection cannot carry another request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
