//! The top-level entity lists: static `workers` and the `chat_templates` they (and
//! discovered workers) name. Each worker validates itself; the `--worker` flag parses into the
//! same struct as a YAML entry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_runtime::{
    spec_check, ChatTemplate, Engine, InstanceSpec, TemplateCatalog, WorkerApi, WorkerAuth,
};

use super::{invalid, ConfigError, ServeConfig};

/// One statically configured worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    pub model: String,
    pub url: String,
    /// Defaults to the URL's `host:port`.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub engine: Engine,
    /// `chat` (default) or `completions` (the frontend applies the chat template).
    #[serde(default)]
    pub api: WorkerApi,
    /// APIs served natively besides what `api` implies (`responses`, `messages`); see
    /// docs/api.md. `--worker` spells the list `apis=chat+responses`.
    #[serde(default)]
    pub apis: Vec<switchyard_runtime::Api>,
    #[serde(default)]
    pub chat_template: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default = "one")]
    pub weight: f32,
    /// Path the active probe GETs on this worker (default: `probe.path`).
    #[serde(default)]
    pub health_path: Option<String>,
    /// File holding the API key the worker was started with (vLLM/SGLang/llama.cpp
    /// `--api-key`); sent as `Authorization: Bearer …` on requests, probes, canaries and
    /// scrapes, never logged.
    #[serde(default)]
    pub api_key_file: Option<String>,
    /// `both` (default), `prefill` or `decode` ([disaggregation](../docs/disaggregation.md)).
    #[serde(default)]
    pub role: switchyard_runtime::Role,
    /// A prefill worker's SGLang bootstrap port (`pd_protocol: sglang`).
    #[serde(default)]
    pub bootstrap_port: Option<u16>,
}

impl WorkerConfig {
    /// The worker's credentials, read from `api_key_file`.
    fn auth(&self, key: &str) -> Result<Option<WorkerAuth>, ConfigError> {
        let Some(path) = &self.api_key_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("{key}.api_key_file"), format!("{path}: {e}")))?;
        WorkerAuth::bearer(&text).map(Some).ok_or_else(|| {
            invalid(
                format!("{key}.api_key_file"),
                format!("{path} holds no usable key (empty, or characters a header cannot carry)"),
            )
        })
    }
}

fn one() -> f32 {
    1.0
}

/// Where a configured chat template's source is: exactly one of `path` and `inline`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateSource {
    /// A minijinja file, read at startup.
    pub path: Option<String>,
    /// The template itself.
    pub inline: Option<String>,
}

impl TemplateSource {
    fn compile(&self) -> Result<ChatTemplate, switchyard_runtime::TemplateError> {
        match (&self.path, &self.inline) {
            (Some(path), None) => ChatTemplate::from_file(path),
            (None, Some(text)) => ChatTemplate::from_source(text.clone()),
            _ => Err(switchyard_runtime::TemplateError::Compile(
                "set exactly one of `path` and `inline`".into(),
            )),
        }
    }
}

impl ServeConfig {
    /// Every chat template the frontend knows: `chat_templates`, plus each static worker's
    /// template file under the name [`worker_template_name`]. Reads the files.
    pub fn template_catalog(&self) -> Result<TemplateCatalog, ConfigError> {
        let mut catalog = TemplateCatalog::default();
        for (name, source) in &self.chat_templates {
            let template = source
                .compile()
                .map_err(|e| invalid(format!("chat_templates.{name}"), e.to_string()))?;
            catalog.insert(name.clone(), template);
        }
        for (i, worker) in self.workers.iter().enumerate() {
            if let Some(path) = worker.template_path(&self.chat_templates) {
                let template = ChatTemplate::from_file(path)
                    .map_err(|e| invalid(format!("workers[{i}].chat_template"), e.to_string()))?;
                catalog.insert(worker_template_name(i), template);
            }
        }
        Ok(catalog)
    }

    /// Static workers as instance specs with unique ids.
    pub fn instance_specs(&self) -> Vec<InstanceSpec> {
        let mut seen = std::collections::HashSet::new();
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let auth = w.auth(&format!("workers[{i}]")).unwrap_or_else(|e| {
                    // `validate` read it moments ago; if it vanished since, say so (requests
                    // will get the worker's 401) rather than stop the frontend.
                    tracing::warn!(error = %e, "worker credentials unreadable");
                    None
                });
                let mut id = w.id.clone().unwrap_or_else(|| authority(&w.url));
                if !seen.insert(id.clone()) {
                    id = format!("{id}/{}", w.model);
                }
                InstanceSpec {
                    id,
                    model: w.model.clone(),
                    url: w.url.trim_end_matches('/').to_owned(),
                    engine: w.engine,
                    api: w.api,
                    apis: w.apis.iter().map(|a| a.as_str().to_owned()).collect(),
                    chat_template: match w.template_path(&self.chat_templates) {
                        Some(_) => Some(worker_template_name(i)),
                        None => w.chat_template.clone(),
                    },
                    chat_template_text: None,
                    labels: w.labels.clone(),
                    weight: w.weight,
                    canary: None,
                    health_path: w.health_path.clone(),
                    role: w.role,
                    bootstrap_port: w.bootstrap_port,
                    auth,
                    api_key_name: None,
                }
            })
            .collect()
    }

    /// `chat_templates` and `workers`, each entry by its key; static workers then pass the
    /// same check as discovered ones.
    pub(super) fn validate_workers(&self) -> Result<(), ConfigError> {
        for (name, source) in &self.chat_templates {
            let key = format!("chat_templates.{name}");
            if !spec_check::is_template_name(name) {
                return Err(invalid(
                    key,
                    "names are [A-Za-z0-9._-], not starting with '.'",
                ));
            }
            source.compile().map_err(|e| invalid(key, e.to_string()))?;
        }
        for (i, worker) in self.workers.iter().enumerate() {
            worker.validate(&format!("workers[{i}]"), &self.chat_templates)?;
        }
        for (i, spec) in self.instance_specs().iter().enumerate() {
            spec_check::check(spec)
                .map_err(|r| invalid(format!("workers[{i}].{}", r.reason.as_str()), r.message))?;
        }
        Ok(())
    }
}

/// The catalog name of static worker `i`'s template file.
fn worker_template_name(i: usize) -> String {
    format!("workers.{i}")
}

impl WorkerConfig {
    /// This worker's `chat_template` when it is a file path (the operator's own config may
    /// name files) rather than a key of `chat_templates`.
    fn template_path<'a>(&'a self, named: &BTreeMap<String, TemplateSource>) -> Option<&'a str> {
        self.chat_template
            .as_deref()
            .filter(|t| !named.contains_key(*t))
    }

    fn validate(
        &self,
        key: &str,
        named: &BTreeMap<String, TemplateSource>,
    ) -> Result<(), ConfigError> {
        if self.model.trim().is_empty() {
            return Err(invalid(format!("{key}.model"), "must not be empty"));
        }
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| invalid(format!("{key}.url"), format!("`{}`: {e}", self.url)))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(invalid(
                format!("{key}.url"),
                format!("`{}` must be an http:// or https://host:port URL", self.url),
            ));
        }
        if !(self.weight > 0.0 && self.weight.is_finite()) {
            return Err(invalid(
                format!("{key}.weight"),
                "must be a positive number",
            ));
        }
        if let Some(path) = self.template_path(named) {
            ChatTemplate::from_file(path)
                .map_err(|e| invalid(format!("{key}.chat_template"), e.to_string()))?;
        }
        self.auth(key)?;
        if let Some(path) = &self.health_path {
            if !path.starts_with('/') {
                return Err(invalid(
                    format!("{key}.health_path"),
                    format!("`{path}` must start with `/`"),
                ));
            }
        }
        Ok(())
    }
}

fn authority(url: &str) -> String {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| url.to_owned())
}

/// Parses a `--worker MODEL=URL[;key=value…]` flag. The options are the YAML worker keys
/// (`id`, `engine`, `api`, `apis` joined by `+`, `weight`, `health_path`, `chat_template`), so a worker that needs
/// one (an engine kind, a probe path) does not force a YAML file on its operator.
pub fn parse_worker_flag(flag: &str) -> Result<WorkerConfig, String> {
    let mut parts = flag.split(';');
    let head = parts.next().unwrap_or_default();
    let (model, url) = head
        .split_once('=')
        .ok_or_else(|| format!("`{flag}` is not MODEL=URL[;key=value…]"))?;
    let mut fields = serde_json::Map::new();
    fields.insert("model".into(), model.into());
    fields.insert("url".into(), url.into());
    for option in parts.filter(|p| !p.is_empty()) {
        let (key, value) = option
            .split_once('=')
            .ok_or_else(|| format!("worker option `{option}` is not key=value"))?;
        let value = match key {
            "weight" => value
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(serde_json::Value::Number)
                .ok_or_else(|| format!("worker option weight=`{value}` is not a number"))?,
            "apis" => value.split('+').map(serde_json::Value::from).collect(),
            "bootstrap_port" => value
                .parse::<u16>()
                .map(serde_json::Value::from)
                .map_err(|_| format!("worker option bootstrap_port=`{value}` is not a port"))?,
            _ => value.into(),
        };
        if fields.insert(key.to_owned(), value).is_some() {
            return Err(format!("worker option `{key}` given twice"));
        }
    }
    serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| format!("`{flag}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_flags_take_per_worker_options() {
        let w = parse_worker_flag("m=http://h:1").unwrap();
        assert_eq!((w.engine, w.health_path), (Engine::Generic, None));
        let w = parse_worker_flag(
            "m=http://h:1;engine=llamacpp;health_path=/v1/models;weight=2.5;id=w1;api=completions",
        )
        .unwrap();
        assert_eq!(w.engine, Engine::Llamacpp);
        assert_eq!(w.health_path.as_deref(), Some("/v1/models"));
        assert_eq!((w.weight, w.id.as_deref()), (2.5, Some("w1")));
        assert_eq!(w.api, WorkerApi::Completions);
        let w = parse_worker_flag("m=http://h:1;role=prefill;bootstrap_port=8998").unwrap();
        assert_eq!(w.role, switchyard_runtime::Role::Prefill);
        assert_eq!(w.bootstrap_port, Some(8998));
        let w = parse_worker_flag("m=http://h:1;apis=chat+responses+messages").unwrap();
        let native = &w.apis[1..];
        assert_eq!(
            native,
            [
                switchyard_runtime::Api::Responses,
                switchyard_runtime::Api::Messages
            ]
        );
        for (flag, named) in [
            ("m=http://h:1;apis=chat+gemini", "gemini"),
            ("m=http://h:1;role=encode", "encode"),
            ("m=http://h:1;bootstrap_port=70000", "bootstrap_port"),
            ("m=http://h:1;engin=vllm", "engin"),
            ("m=http://h:1;engine=tgi", "tgi"),
            ("m=http://h:1;weight=heavy", "weight"),
            ("m=http://h:1;engine", "engine"),
            ("m=http://h:1;id=a;id=b", "id"),
            ("http://h:1", "MODEL=URL"),
        ] {
            let err = parse_worker_flag(flag).unwrap_err();
            assert!(err.contains(named), "{flag}: {err}");
        }
    }

    #[test]
    fn duplicate_urls_get_distinct_ids() {
        let mut cfg = ServeConfig::default();
        cfg.workers
            .push(parse_worker_flag("a=http://127.0.0.1:1").unwrap());
        cfg.workers
            .push(parse_worker_flag("b=http://127.0.0.1:1").unwrap());
        let ids: Vec<_> = cfg.instance_specs().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, vec!["127.0.0.1:1", "127.0.0.1:1/b"]);
        assert!(parse_worker_flag("no-equals").is_err());
    }
}
