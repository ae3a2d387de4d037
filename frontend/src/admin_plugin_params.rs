//! The query parameters of `PUT /admin/plugins/{name}`: every setting a `plugins:` entry of
//! the YAML config (or a `RouterPlugin`) can carry, and nothing else.
//!
//! | parameter | meaning |
//! |---|---|
//! | `sha256` | hex digest of the body (required) |
//! | `kind` | `filter`, `scorer`, `picker` or `health` (required for a new name) |
//! | `weight`, `order`, `failurePolicy`, `mode` | as in the YAML |
//! | `models` (alias `appliesTo`) | comma-separated model names; empty = every model |
//! | `config` | the plugin's JSON config |
//! | `limits` | a JSON object of limits, merged over the current ones |
//! | `memoryBytes`, `decisionBudget`, `initBudget`, `maxIdleInstances` | one limit each |
//!
//! An unknown or repeated parameter is a 400 that names it: a typo (`memoryByte=`) must not
//! load a plugin with a setting silently ignored.

use switchyard_plugin_host::{PluginKind, PluginLimits};

use crate::error::ApiError;
use crate::plugins::{FailurePolicy, PluginConfig, PluginMode};

/// Every parameter the PUT accepts.
const KNOWN: &[&str] = &[
    "sha256",
    "kind",
    "weight",
    "order",
    "failurePolicy",
    "mode",
    "models",
    "appliesTo",
    "config",
    "limits",
    "memoryBytes",
    "decisionBudget",
    "initBudget",
    "maxIdleInstances",
    "wait",
];

/// The individual limit parameters, named as in `limits:`.
const LIMIT_KEYS: &[&str] = &[
    "memoryBytes",
    "decisionBudget",
    "initBudget",
    "maxIdleInstances",
];

/// The parsed query string of a PUT.
pub struct PutParams {
    pairs: Vec<(String, String)>,
}

impl PutParams {
    /// Parses and checks the query: unknown or repeated parameters are a 400 naming them.
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let unknown: Vec<&str> = pairs
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !KNOWN.contains(k))
            .collect();
        if let Some(first) = unknown.first() {
            return Err(ApiError::invalid_request(format!(
                "Unknown parameter{} {}; the settings are: {}.",
                if unknown.len() > 1 { "s" } else { "" },
                unknown
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                KNOWN.join(", ")
            ))
            .with_param(*first)
            .with_code("unknown_parameter"));
        }
        for (n, (key, _)) in pairs.iter().enumerate() {
            if pairs[..n].iter().any(|(k, _)| k == key) {
                return Err(
                    ApiError::invalid_request(format!("`{key}` is given more than once."))
                        .with_param(key),
                );
            }
        }
        if let (Some(_), Some(_)) = (
            pairs.iter().find(|(k, _)| k == "models"),
            pairs.iter().find(|(k, _)| k == "appliesTo"),
        ) {
            return Err(ApiError::invalid_request(
                "`models` and `appliesTo` are the same setting; give one.",
            )
            .with_param("appliesTo"));
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `wait=true`: answer when the load is done (200, or 400 naming why) instead of 202 at
    /// once. Default false.
    pub fn wait(&self) -> Result<bool, ApiError> {
        match self.get("wait") {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::invalid_request(format!(
                "`wait` is `true` or `false`, not `{other}`."
            ))
            .with_param("wait")),
        }
    }

    /// The plugin's settings: the existing ones (on a swap) overridden by the parameters.
    pub fn settings(
        &self,
        name: &str,
        existing: Option<PluginConfig>,
    ) -> Result<PluginConfig, ApiError> {
        let bad = |key: &str, msg: String| ApiError::invalid_request(msg).with_param(key);
        let kind = match (self.get("kind"), &existing) {
            (Some(k), _) => k
                .parse::<PluginKind>()
                .map_err(|e| bad("kind", e.to_string()))?,
            (None, Some(e)) => e.kind,
            (None, None) => {
                return Err(bad(
                    "kind",
                    "`kind` is required for a new plugin (filter, scorer, picker or health)."
                        .into(),
                ))
            }
        };
        let mut config = existing.unwrap_or_else(|| PluginConfig {
            name: name.to_owned(),
            kind,
            path: None,
            weight: 1.0,
            order: 0,
            config: serde_json::json!({}),
            failure_policy: FailurePolicy::FailOpen,
            mode: PluginMode::Active,
            models: Vec::new(),
            limits: PluginLimits::default(),
        });
        config.kind = kind;
        config.path = None;
        if let Some(w) = self.get("weight") {
            config.weight = w
                .parse()
                .map_err(|_| bad("weight", format!("`{w}` is not a number")))?;
        }
        if let Some(o) = self.get("order") {
            config.order = o
                .parse()
                .map_err(|_| bad("order", format!("`{o}` is not an integer")))?;
        }
        if let Some(p) = self.get("failurePolicy") {
            config.failure_policy = serde_json::from_value(serde_json::json!(p)).map_err(|_| {
                bad(
                    "failurePolicy",
                    format!("`{p}` is not FailOpen or FailClosed"),
                )
            })?;
        }
        if let Some(m) = self.get("mode") {
            config.mode = serde_json::from_value(serde_json::json!(m))
                .map_err(|_| bad("mode", format!("`{m}` is not Active or Shadow")))?;
        }
        if let Some(models) = self.get("models").or_else(|| self.get("appliesTo")) {
            config.models = models
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(c) = self.get("config") {
            config.config = serde_json::from_str(c)
                .map_err(|e| bad("config", format!("config is not JSON: {e}")))?;
        }
        config.limits = self.limits(&config.limits)?;
        config.validate().map_err(ApiError::invalid_request)?;
        Ok(config)
    }

    /// `current` with `limits=JSON` merged over it, then the single-limit parameters.
    fn limits(&self, current: &PluginLimits) -> Result<PluginLimits, ApiError> {
        let bad = |key: &str, msg: String| ApiError::invalid_request(msg).with_param(key);
        let mut merged = serde_json::to_value(current)
            .map_err(|e| bad("limits", format!("cannot read the current limits: {e}")))?;
        let Some(fields) = merged.as_object_mut() else {
            return Err(bad("limits", "the current limits are not an object".into()));
        };
        if let Some(json) = self.get("limits") {
            let given: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
                .map_err(|e| bad("limits", format!("limits is not a JSON object: {e}")))?;
            fields.extend(given);
        }
        for key in LIMIT_KEYS {
            if let Some(value) = self.get(key) {
                // Numbers stay numbers; durations are strings with a unit ("5ms").
                let value = value
                    .parse::<u64>()
                    .map(serde_json::Value::from)
                    .unwrap_or_else(|_| serde_json::Value::from(value));
                // Checked alone first, so the error names this parameter.
                serde_json::from_value::<PluginLimits>(serde_json::json!({ *key: value.clone() }))
                    .map_err(|e| bad(key, format!("invalid {key}: {e}")))?;
                fields.insert((*key).to_owned(), value);
            }
        }
        serde_json::from_value(merged).map_err(|e| bad("limits", format!("invalid limits: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<PutParams, ApiError> {
        PutParams::parse(Some(query))
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let error = parse("sha256=ab&bogus=1&memoryByte=2").err().unwrap();
        assert_eq!(error.status, 400);
        assert_eq!(error.param.as_deref(), Some("bogus"));
        assert!(
            error.message.contains("`bogus`") && error.message.contains("`memoryByte`"),
            "{}",
            error.message
        );
        let error = parse("sha256=ab&weight=1&weight=2").err().unwrap();
        assert_eq!(error.param.as_deref(), Some("weight"));
        assert!(parse("sha256=ab&models=a&appliesTo=b").is_err());
    }

    #[test]
    fn every_setting_is_settable() {
        let p = parse(
            "sha256=ab&kind=scorer&weight=2.5&order=-3&failurePolicy=FailClosed&mode=Shadow\
             &appliesTo=a,b&config=%7B%22k%22%3A1%7D&memoryBytes=134217728&decisionBudget=20ms\
             &limits=%7B%22initBudget%22%3A%225s%22%2C%22maxIdleInstances%22%3A2%7D",
        )
        .unwrap();
        let c = p.settings("x", None).unwrap();
        assert_eq!((c.kind, c.weight, c.order), (PluginKind::Scorer, 2.5, -3));
        assert_eq!(c.failure_policy, FailurePolicy::FailClosed);
        assert_eq!(c.mode, PluginMode::Shadow);
        assert_eq!(c.models, ["a", "b"]);
        assert_eq!(c.config, serde_json::json!({"k": 1}));
        assert_eq!(c.limits.memory_bytes, 128 << 20);
        assert_eq!(
            c.limits.decision_budget,
            std::time::Duration::from_millis(20)
        );
        assert_eq!(c.limits.init_budget, std::time::Duration::from_secs(5));
        assert_eq!(c.limits.max_idle_instances, 2);
    }

    #[test]
    fn a_swap_keeps_the_settings_it_does_not_override() {
        let first = parse("sha256=ab&kind=scorer&memoryBytes=134217728&weight=3")
            .unwrap()
            .settings("x", None)
            .unwrap();
        let second = parse("sha256=cd&decisionBudget=5ms")
            .unwrap()
            .settings("x", Some(first))
            .unwrap();
        assert_eq!(second.weight, 3.0);
        assert_eq!(second.limits.memory_bytes, 128 << 20);
        assert_eq!(
            second.limits.decision_budget,
            std::time::Duration::from_millis(5)
        );
    }

    #[test]
    fn bad_limits_name_the_setting() {
        for (query, param) in [
            (
                "sha256=ab&kind=scorer&limits=%7B%22memoryByte%22%3A1%7D",
                "limits",
            ),
            ("sha256=ab&kind=scorer&limits=3", "limits"),
            (
                "sha256=ab&kind=scorer&decisionBudget=soon",
                "decisionBudget",
            ),
        ] {
            let error = parse(query).unwrap().settings("x", None).err().unwrap();
            assert_eq!(error.param.as_deref(), Some(param), "{query}");
        }
    }
}
