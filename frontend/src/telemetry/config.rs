//! The `telemetry` config section and the standard OpenTelemetry environment variables.
//!
//! Export is on when an endpoint is known: `telemetry.otlp.endpoint`, or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_EXPORTER_OTLP_ENDPOINT` (the signal-specific
//! variable wins over the generic one, as the spec says). **The config file wins over the
//! environment** key by key; the environment fills what the file leaves out.
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn off an export that only the
//! environment asked for. Malformed variables are warned about and ignored (the spec's rule),
//! while a malformed config key is an error that names it.

use serde::{Deserialize, Serialize};

pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
pub const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";

const DEFAULT_SERVICE_NAME: &str = "switchyard";

/// `telemetry:` in the YAML file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP trace export over gRPC; off when absent (unless the environment names an endpoint).
    pub otlp: Option<OtlpConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's gRPC endpoint, e.g. `http://otel-collector:4317`.
    pub endpoint: String,
    /// The `service.name` resource attribute (default `switchyard`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// The share of new traces recorded, 0 to 1 (default 1). A client's sampled flag is
    /// followed either way (a parent-based sampler).
    #[serde(default)]
    pub sample_ratio: Option<f64>,
}

/// How traces are sampled: the spec's `OTEL_TRACES_SAMPLER` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedRatio(f64),
}

/// Export settings after the file and the environment are combined.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub endpoint: String,
    pub service_name: String,
    pub sampler: Sampler,
}

impl TelemetryConfig {
    /// Checks the section; errors name the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let Some(otlp) = &self.otlp else {
            return Ok(());
        };
        check_endpoint(&otlp.endpoint).map_err(|m| ("telemetry.otlp.endpoint", m))?;
        if let Some(name) = &otlp.service_name {
            if name.is_empty() || name.len() > 255 {
                return Err((
                    "telemetry.otlp.service_name",
                    "must be 1 to 255 characters".into(),
                ));
            }
        }
        if let Some(ratio) = otlp.sample_ratio {
            if !(0.0..=1.0).contains(&ratio) {
                return Err((
                    "telemetry.otlp.sample_ratio",
                    "must be between 0 and 1".into(),
                ));
            }
        }
        Ok(())
    }

    /// The export settings, or `None` when export is off; warnings about ignored
    /// environment variables go in `warnings`. `env` reads a variable.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
        warnings: &mut Vec<String>,
    ) -> Option<Settings> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let file = self.otlp.as_ref();
        let endpoint = match file {
            Some(otlp) => otlp.endpoint.clone(),
            None => {
                let disabled = env(OTEL_SDK_DISABLED)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"))
                    || env(OTEL_TRACES_EXPORTER).is_some_and(|v| v.trim() == "none");
                let endpoint = env(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
                    .map(|v| (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, v))
                    .or_else(|| {
                        env(OTEL_EXPORTER_OTLP_ENDPOINT).map(|v| (OTEL_EXPORTER_OTLP_ENDPOINT, v))
                    });
                let (name, endpoint) = endpoint.filter(|_| !disabled)?;
                if let Err(message) = check_endpoint(&endpoint) {
                    warnings.push(format!("{name} ignored: {message}"));
                    return None;
                }
                endpoint
            }
        };
        if let Some(protocol) = env(OTEL_EXPORTER_OTLP_PROTOCOL).filter(|p| p.trim() != "grpc") {
            warnings.push(format!(
                "{OTEL_EXPORTER_OTLP_PROTOCOL}={protocol} ignored: traces are exported over grpc"
            ));
        }
        let service_name = file
            .and_then(|f| f.service_name.clone())
            .or_else(|| env(OTEL_SERVICE_NAME))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
        let sampler = match file.and_then(|f| f.sample_ratio) {
            Some(ratio) => Sampler::ParentBasedRatio(ratio),
            None => env_sampler(&env, warnings),
        };
        Some(Settings {
            endpoint,
            service_name,
            sampler,
        })
    }
}

/// `OTEL_TRACES_SAMPLER` and its argument; the default is `parentbased_always_on`, and a
/// ratio that is missing or out of range is 1.0.
fn env_sampler(env: &impl Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> Sampler {
    let mut ratio = || match env(OTEL_TRACES_SAMPLER_ARG) {
        None => 1.0,
        Some(arg) => match arg.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => {
                warnings.push(format!(
                    "{OTEL_TRACES_SAMPLER_ARG}={arg} ignored: not a ratio from 0 to 1"
                ));
                1.0
            }
        },
    };
    match env(OTEL_TRACES_SAMPLER).as_deref().map(str::trim) {
        None | Some("parentbased_always_on") => Sampler::ParentBasedAlwaysOn,
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("parentbased_always_off") => Sampler::ParentBasedAlwaysOff,
        Some("traceidratio") => Sampler::Ratio(ratio()),
        Some("parentbased_traceidratio") => Sampler::ParentBasedRatio(ratio()),
        Some(other) => {
            warnings.push(format!(
                "{OTEL_TRACES_SAMPLER}={other} ignored: not a supported sampler; using parentbased_always_on"
            ));
            Sampler::ParentBasedAlwaysOn
        }
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let uri: http::Uri = endpoint.parse().map_err(|e| format!("not a URL ({e})"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err("must be an http:// or https:// URL with a host".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(config: &TelemetryConfig, vars: &[(&str, &str)]) -> (Option<Settings>, Vec<String>) {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut warnings = Vec::new();
        let settings = config.resolve(|name| vars.get(name).cloned(), &mut warnings);
        (settings, warnings)
    }

    fn file(endpoint: &str) -> TelemetryConfig {
        TelemetryConfig {
            otlp: Some(OtlpConfig {
                endpoint: endpoint.into(),
                service_name: None,
                sample_ratio: None,
            }),
        }
    }

    #[test]
    fn export_is_off_by_default() {
        assert_eq!(resolve(&TelemetryConfig::default(), &[]).0, None);
    }

    #[test]
    fn the_environment_turns_export_on_the_traces_variable_first() {
        let (s, _) = resolve(
            &TelemetryConfig::default(),
            &[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://generic:4317"),
                (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://traces:4317"),
                (OTEL_SERVICE_NAME, "edge"),
            ],
        );
        let s = s.unwrap();
        assert_eq!(s.endpoint, "http://traces:4317");
        assert_eq!(s.service_name, "edge");
        assert_eq!(s.sampler, Sampler::ParentBasedAlwaysOn);
        let off = [
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4317"),
            (OTEL_SDK_DISABLED, "true"),
        ];
        assert_eq!(resolve(&TelemetryConfig::default(), &off).0, None);
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let mut config = file("http://file:4317");
        if let Some(otlp) = &mut config.otlp {
            otlp.sample_ratio = Some(0.25);
        }
        let (s, _) = resolve(
            &config,
            &[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://env:4317"),
                (OTEL_TRACES_SAMPLER, "always_off"),
                (OTEL_SERVICE_NAME, "from-env"),
                (OTEL_SDK_DISABLED, "true"),
            ],
        );
        let s = s.unwrap();
        assert_eq!(s.endpoint, "http://file:4317");
        assert_eq!(s.sampler, Sampler::ParentBasedRatio(0.25));
        assert_eq!(
            s.service_name, "from-env",
            "the environment fills what the file leaves out"
        );
    }

    #[test]
    fn samplers_follow_the_spec_and_bad_values_warn() {
        let base = [(OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4317")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let vars: Vec<_> = base.iter().chain(extra).copied().collect();
            resolve(&TelemetryConfig::default(), &vars)
        };
        let (s, w) = with(&[
            (OTEL_TRACES_SAMPLER, "traceidratio"),
            (OTEL_TRACES_SAMPLER_ARG, "0.5"),
        ]);
        assert_eq!((s.unwrap().sampler, w.len()), (Sampler::Ratio(0.5), 0));
        let (s, w) = with(&[
            (OTEL_TRACES_SAMPLER, "parentbased_traceidratio"),
            (OTEL_TRACES_SAMPLER_ARG, "2"),
        ]);
        assert_eq!(s.unwrap().sampler, Sampler::ParentBasedRatio(1.0));
        assert_eq!(w.len(), 1);
        let (s, w) = with(&[(OTEL_TRACES_SAMPLER, "jaeger_remote")]);
        assert_eq!(s.unwrap().sampler, Sampler::ParentBasedAlwaysOn);
        assert!(w[0].contains("jaeger_remote"));
        let (s, w) = resolve(
            &TelemetryConfig::default(),
            &[(OTEL_EXPORTER_OTLP_ENDPOINT, "nope")],
        );
        assert_eq!(s, None);
        assert!(w[0].contains(OTEL_EXPORTER_OTLP_ENDPOINT));
    }

    #[test]
    fn the_section_is_validated_with_key_names() {
        assert!(file("http://c:4317").validate().is_ok());
        assert_eq!(
            file("c:4317").validate().unwrap_err().0,
            "telemetry.otlp.endpoint"
        );
        let mut ratio = file("http://c:4317");
        if let Some(otlp) = &mut ratio.otlp {
            otlp.sample_ratio = Some(1.5);
        }
        assert_eq!(
            ratio.validate().unwrap_err().0,
            "telemetry.otlp.sample_ratio"
        );
        let yaml = "otlp: {endpoint: 'http://c:4317', sample_rate: 1}";
        let err = serde_yaml::from_str::<TelemetryConfig>(yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sample_rate"), "{err}");
    }
}
