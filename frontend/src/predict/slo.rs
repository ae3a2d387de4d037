//! The TTFT target (SLO) a request is routed against: the `x-switchyard-ttft-slo-ms` header,
//! else its tenant's `ttft_slo_ms`, else the model's (`models.<name>.ttft_slo_ms`, or
//! `routing.ttft_slo_ms` for every model).

use http::HeaderMap;
use switchyard_runtime::policy::ttft::check_slo_ms;

use crate::error::ApiError;

/// Request header carrying a TTFT target in milliseconds.
pub const SLO_HEADER: &str = "x-switchyard-ttft-slo-ms";

/// The target for a request; a malformed header is the client's error (400).
pub fn target(
    headers: &HeaderMap,
    tenant: Option<f64>,
    model: Option<f64>,
) -> Result<Option<f64>, ApiError> {
    let Some(value) = headers.get(SLO_HEADER) else {
        return Ok(tenant.or(model));
    };
    let invalid = |why: String| {
        ApiError::invalid_request(format!("Invalid {SLO_HEADER} header: {why}"))
            .with_param(SLO_HEADER)
    };
    let text = value
        .to_str()
        .map_err(|_| invalid("not visible ASCII".to_owned()))?;
    let ms: f64 = text.trim().parse().map_err(|_| {
        invalid(format!(
            "`{}` is not a number",
            text.chars().take(32).collect::<String>()
        ))
    })?;
    check_slo_ms(ms).map(Some).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SLO_HEADER, v.parse().unwrap());
        h
    }

    #[test]
    fn the_header_wins_over_tenant_and_model() {
        assert_eq!(
            target(&headers(" 250 "), Some(1.0), Some(2.0)),
            Ok(Some(250.0))
        );
        assert_eq!(
            target(&HeaderMap::new(), Some(1.0), Some(2.0)),
            Ok(Some(1.0))
        );
        assert_eq!(target(&HeaderMap::new(), None, Some(2.0)), Ok(Some(2.0)));
        assert_eq!(target(&HeaderMap::new(), None, None), Ok(None));
    }

    #[test]
    fn a_bad_header_is_a_400_naming_the_header() {
        for bad in ["fast", "0", "-5", "NaN", "inf", "1e12", ""] {
            let err = target(&headers(bad), None, None).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
            assert_eq!(err.param.as_deref(), Some(SLO_HEADER), "{bad}");
        }
    }
}
