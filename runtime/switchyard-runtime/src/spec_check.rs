//! Validation of instance specs: the one gate every spec passes, whatever its source.
//!
//! Static workers come from the operator's own YAML, but etcd entries and Kubernetes objects
//! are written by whoever can write there, so a spec is untrusted input: it must not make the
//! frontend read files, talk to anything but an http(s) worker, or mint unbounded metric and
//! map keys. [`check`] says what is wrong with a spec, and [`Reason`] names it with a short,
//! fixed label for `switchyard_discovery_rejected_total`.

use crate::InstanceSpec;

/// Longest instance id, bytes (Kubernetes ids are `namespace/pool/pod`, each part ≤ 253).
pub const MAX_ID_BYTES: usize = 600;
/// Longest model name, bytes.
pub const MAX_MODEL_BYTES: usize = 256;
/// Longest worker URL, bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest chat-template *name*, bytes.
pub const MAX_TEMPLATE_NAME_BYTES: usize = 128;
/// Largest inline chat template (`chat_template_text`), bytes: HF templates are a few KiB.
pub const MAX_TEMPLATE_TEXT_BYTES: usize = 32 * 1024;
/// Most labels on one instance, and the longest key or value.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_BYTES: usize = 256;
/// Longest health or canary path, and canary body.
pub const MAX_PATH_BYTES: usize = 1024;
pub const MAX_CANARY_BODY_BYTES: usize = 16 * 1024;
/// Longest worker API key *name*, bytes.
pub const MAX_KEY_NAME_BYTES: usize = 128;
/// Largest routing weight (weights are relative; this only keeps sums finite).
pub const MAX_WEIGHT: f32 = 1.0e6;
/// Longest canary idle time or timeout, milliseconds (one day).
pub const MAX_CANARY_MS: u64 = 86_400_000;

/// Why a spec was rejected: a fixed set, so it can be a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Not a JSON instance spec at all.
    Parse,
    Id,
    Model,
    Url,
    Weight,
    ChatTemplate,
    Labels,
    HealthPath,
    Canary,
    /// `api_key_name` malformed or not in the frontend's `worker_api_keys`.
    ApiKey,
    /// A discovered LoRA adapter entry (name, base model or source) is malformed.
    Adapter,
    /// `apis` names an unknown API, one twice, or `chat` for a completions-only worker.
    Apis,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::Parse,
        Reason::Id,
        Reason::Model,
        Reason::Url,
        Reason::Weight,
        Reason::ChatTemplate,
        Reason::Labels,
        Reason::HealthPath,
        Reason::Canary,
        Reason::ApiKey,
        Reason::Adapter,
        Reason::Apis,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Parse => "parse",
            Reason::Id => "id",
            Reason::Model => "model",
            Reason::Url => "url",
            Reason::Weight => "weight",
            Reason::ChatTemplate => "chat_template",
            Reason::Labels => "labels",
            Reason::HealthPath => "health_path",
            Reason::Canary => "canary",
            Reason::ApiKey => "api_key",
            Reason::Adapter => "adapter",
            Reason::Apis => "apis",
        }
    }
}

/// A rejected spec: the reason label and a message for the log (never the spec's secrets:
/// URLs are not echoed, since a rejected URL may carry credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.as_str())]
pub struct Rejection {
    pub reason: Reason,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Checks every field of `spec` that a source could get wrong.
pub fn check(spec: &InstanceSpec) -> Result<(), Rejection> {
    check_name(&spec.id, MAX_ID_BYTES, is_id_char)
        .map_err(|m| Rejection::new(Reason::Id, format!("instance id {m}")))?;
    check_name(&spec.model, MAX_MODEL_BYTES, is_model_char)
        .map_err(|m| Rejection::new(Reason::Model, format!("model name {m}")))?;
    check_url(&spec.url).map_err(|m| Rejection::new(Reason::Url, m))?;
    // The bootstrap port completes the URL's host into a second address (SGLang's KV
    // hand-over); a role needs no check, serde accepts only its three names.
    if spec.bootstrap_port == Some(0) {
        return Err(Rejection::new(
            Reason::Url,
            "bootstrap_port must be 1-65535",
        ));
    }
    if !(spec.weight > 0.0 && spec.weight <= MAX_WEIGHT) {
        return Err(Rejection::new(
            Reason::Weight,
            format!("weight must be in (0, {MAX_WEIGHT}]"),
        ));
    }
    check_template(spec).map_err(|m| Rejection::new(Reason::ChatTemplate, m))?;
    crate::apis::check(spec).map_err(|m| Rejection::new(Reason::Apis, m))?;
    if let Some(name) = &spec.api_key_name {
        if !valid_key_name(name) {
            return Err(Rejection::new(
                Reason::ApiKey,
                format!(
                    "api_key_name must be 1-{MAX_KEY_NAME_BYTES} bytes of [A-Za-z0-9._-], \
                     not starting with a dot"
                ),
            ));
        }
    }
    check_labels(spec).map_err(|m| Rejection::new(Reason::Labels, m))?;
    if let Some(path) = &spec.health_path {
        check_path(path).map_err(|m| Rejection::new(Reason::HealthPath, m))?;
    }
    if let Some(canary) = &spec.canary {
        if let Some(path) = &canary.path {
            check_path(path).map_err(|m| Rejection::new(Reason::Canary, m))?;
        }
        if canary
            .body
            .as_ref()
            .is_some_and(|b| b.len() > MAX_CANARY_BODY_BYTES)
        {
            return Err(Rejection::new(
                Reason::Canary,
                format!("canary body over {MAX_CANARY_BODY_BYTES} bytes"),
            ));
        }
        let too_long = |ms: Option<u64>| ms.is_some_and(|ms| ms > MAX_CANARY_MS);
        if too_long(canary.idle_ms) || too_long(canary.timeout_ms) {
            return Err(Rejection::new(
                Reason::Canary,
                format!("canary times must be at most {MAX_CANARY_MS} ms"),
            ));
        }
    }
    Ok(())
}

/// Whether `name` is a valid chat-template name: what a discovered spec may put in
/// `chat_template`. No `/`, `\` or leading `.`, so a name can never be read as a path.
pub fn is_template_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TEMPLATE_NAME_BYTES
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks a model name as [`check`] does for a spec's model.
pub fn check_model(model: &str) -> Result<(), String> {
    check_name(model, MAX_MODEL_BYTES, is_model_char)
}

fn check_name(value: &str, max: usize, allowed: fn(u8) -> bool) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.len() > max {
        return Err(format!("is over {max} bytes"));
    }
    match value.bytes().find(|&b| !allowed(b)) {
        Some(b) => Err(format!("has a disallowed character (byte 0x{b:02x})")),
        None => Ok(()),
    }
}

/// Model names as engines and Hugging Face spell them: `org/name`, `name:tag`, `name@rev`.
fn is_model_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':' | b'@' | b'+')
}

/// Worker API key names: also file names in `worker_api_keys_dir` (a Kubernetes Secret's keys),
/// so no `/` and no leading dot.
fn is_key_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// True when `name` can be a worker API key name.
pub fn valid_key_name(name: &str) -> bool {
    check_name(name, MAX_KEY_NAME_BYTES, is_key_name_char).is_ok() && !name.starts_with('.')
}

/// Ids: as model names, plus the brackets of an IPv6 `host:port` (the default static id).
fn is_id_char(b: u8) -> bool {
    is_model_char(b) || matches!(b, b'[' | b']' | b'%' | b'~')
}

fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("url is over {MAX_URL_BYTES} bytes"));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "url is not a valid URL".to_owned())?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("url must be http:// or https://".into());
    }
    let Some(authority) = uri.authority() else {
        return Err("url has no host".into());
    };
    if authority.host().is_empty() {
        return Err("url has no host".into());
    }
    // Credentials in a worker URL would be sent nowhere useful and would reach logs,
    // `/admin/instances` and plugins; a query or fragment would be mangled by path joins.
    if authority.as_str().contains('@') {
        return Err("url must not carry user:password@".into());
    }
    if uri.query().is_some() || url.contains('#') {
        return Err("url must not have a query or fragment".into());
    }
    Ok(())
}

fn check_template(spec: &InstanceSpec) -> Result<(), String> {
    if let Some(name) = &spec.chat_template {
        if !is_template_name(name) {
            return Err(format!(
                "chat_template must name a template configured in the frontend's \
                 `chat_templates` ([A-Za-z0-9._-], at most {MAX_TEMPLATE_NAME_BYTES} bytes, \
                 not starting with '.'); file paths are not accepted from discovery"
            ));
        }
    }
    if let Some(text) = &spec.chat_template_text {
        if text.len() > MAX_TEMPLATE_TEXT_BYTES {
            return Err(format!(
                "chat_template_text is over {MAX_TEMPLATE_TEXT_BYTES} bytes"
            ));
        }
        if spec.chat_template.is_some() {
            return Err("set chat_template or chat_template_text, not both".into());
        }
    }
    Ok(())
}

fn check_labels(spec: &InstanceSpec) -> Result<(), String> {
    if spec.labels.len() > MAX_LABELS {
        return Err(format!("more than {MAX_LABELS} labels"));
    }
    let bad = |s: &str| s.len() > MAX_LABEL_BYTES || s.chars().any(char::is_control);
    if spec
        .labels
        .iter()
        .any(|(k, v)| k.is_empty() || bad(k) || bad(v))
    {
        return Err(format!(
            "label keys must be non-empty; keys and values at most {MAX_LABEL_BYTES} bytes \
             without control characters"
        ));
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.starts_with("//") {
        return Err("path must start with a single `/`".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("path is over {MAX_PATH_BYTES} bytes"));
    }
    if path.parse::<http::uri::PathAndQuery>().is_err() {
        return Err("path is not a valid URL path".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WorkerApi;

    fn ok() -> InstanceSpec {
        InstanceSpec::new(
            "ns/pool/pod-1",
            "meta-llama/Llama-3.1-8B-Instruct",
            "http://10.0.0.7:8000",
        )
    }

    fn reason(f: impl FnOnce(&mut InstanceSpec)) -> Option<Reason> {
        let mut spec = ok();
        f(&mut spec);
        check(&spec).err().map(|r| r.reason)
    }

    #[test]
    fn ordinary_specs_pass() {
        assert_eq!(reason(|_| {}), None);
        assert_eq!(
            reason(|s| s.url = "https://w.example:443/prefix".into()),
            None
        );
        assert_eq!(reason(|s| s.id = "[::1]:8000".into()), None);
        assert_eq!(reason(|s| s.model = "llama3:8b".into()), None);
        assert_eq!(
            reason(|s| {
                s.api = WorkerApi::Completions;
                s.chat_template = Some("llama-3.chat_v2".into());
            }),
            None
        );
    }

    #[test]
    fn a_template_path_is_never_a_template_name() {
        for path in [
            "/proc/self/environ",
            "../etc/passwd",
            "templates/x.jinja",
            ".hidden",
            "C:\\x",
        ] {
            assert_eq!(
                reason(|s| {
                    s.api = WorkerApi::Completions;
                    s.chat_template = Some(path.into());
                }),
                Some(Reason::ChatTemplate),
                "{path}"
            );
        }
    }

    #[test]
    fn inline_templates_are_capped() {
        let mut spec = ok();
        spec.api = WorkerApi::Completions;
        spec.chat_template_text = Some("x".repeat(MAX_TEMPLATE_TEXT_BYTES));
        assert_eq!(check(&spec), Ok(()));
        spec.chat_template_text = Some("x".repeat(MAX_TEMPLATE_TEXT_BYTES + 1));
        assert_eq!(
            check(&spec).map_err(|r| r.reason),
            Err(Reason::ChatTemplate)
        );
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        for url in [
            "file:///etc/passwd",
            "ftp://h/",
            "unix:///run/x.sock",
            "http://",
            "h:8000",
            "http://user:pw@h:1",
            "http://h:1/?q=1",
            "http://h:1/#frag",
            "not a url",
        ] {
            assert_eq!(reason(|s| s.url = url.into()), Some(Reason::Url), "{url}");
        }
        assert_eq!(
            reason(|s| s.url = format!("http://h/{}", "a".repeat(MAX_URL_BYTES))),
            Some(Reason::Url)
        );
    }

    #[test]
    fn names_have_a_charset_and_length() {
        assert_eq!(reason(|s| s.id = String::new()), Some(Reason::Id));
        assert_eq!(reason(|s| s.id = "a\nb".into()), Some(Reason::Id));
        assert_eq!(
            reason(|s| s.id = "x".repeat(MAX_ID_BYTES + 1)),
            Some(Reason::Id)
        );
        assert_eq!(reason(|s| s.model = "m\"} 1\n".into()), Some(Reason::Model));
        assert_eq!(
            reason(|s| s.model = "m".repeat(MAX_MODEL_BYTES + 1)),
            Some(Reason::Model)
        );
        assert_eq!(reason(|s| s.model = "ünï".into()), Some(Reason::Model));
    }

    #[test]
    fn numbers_are_in_range() {
        assert_eq!(reason(|s| s.weight = 0.0), Some(Reason::Weight));
        assert_eq!(reason(|s| s.weight = -1.0), Some(Reason::Weight));
        assert_eq!(reason(|s| s.weight = f32::NAN), Some(Reason::Weight));
        assert_eq!(reason(|s| s.weight = f32::INFINITY), Some(Reason::Weight));
        assert_eq!(
            reason(|s| {
                s.canary = Some(crate::instance::CanaryOverride {
                    idle_ms: Some(u64::MAX),
                    ..Default::default()
                })
            }),
            Some(Reason::Canary)
        );
    }

    #[test]
    fn an_api_key_name_is_a_plain_name_never_a_path() {
        for bad in ["", "../etc/passwd", "/run/secrets/k", ".hidden", "a b"] {
            assert_eq!(
                reason(|s| s.api_key_name = Some(bad.to_owned())),
                Some(Reason::ApiKey),
                "{bad:?}"
            );
        }
        assert_eq!(
            reason(|s| s.api_key_name = Some("llama-key.v2".into())),
            None
        );
    }

    #[test]
    fn apis_name_known_apis_once_and_agree_with_api() {
        let apis = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        let listed = |names: &[&str]| reason(|s| s.apis = apis(names));
        assert_eq!(
            listed(&["chat", "completions", "responses", "messages"]),
            None
        );
        assert_eq!(
            listed(&["chat", "completions", "gemini"]),
            Some(Reason::Apis)
        );
        assert_eq!(listed(&["chat", "completions", "chat"]), Some(Reason::Apis));
        assert_eq!(listed(&["responses"]), None);
        let mut spec = ok();
        spec.apis = apis(&["chat", "completions", "Responses"]);
        let rejection = check(&spec).unwrap_err();
        assert_eq!(rejection.reason.as_str(), "apis");
        assert!(rejection.message.contains("`Responses`"), "{rejection}");
    }

    #[test]
    fn a_role_is_one_of_three_names_and_a_bootstrap_port_is_a_real_port() {
        assert_eq!(reason(|s| s.bootstrap_port = Some(0)), Some(Reason::Url));
        assert_eq!(
            reason(|s| {
                s.role = crate::Role::Prefill;
                s.bootstrap_port = Some(8998);
            }),
            None
        );
        let mut json = serde_json::to_value(ok()).unwrap();
        json["role"] = "prefill".into();
        let spec: InstanceSpec = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(spec.role, crate::Role::Prefill);
        json["role"] = "encoder".into();
        assert!(serde_json::from_value::<InstanceSpec>(json).is_err());
    }

    #[test]
    fn paths_and_labels_are_bounded() {
        assert_eq!(
            reason(|s| s.health_path = Some("health".into())),
            Some(Reason::HealthPath)
        );
        assert_eq!(
            reason(|s| s.health_path = Some("//evil/x".into())),
            Some(Reason::HealthPath)
        );
        assert_eq!(
            reason(|s| {
                s.labels = (0..=MAX_LABELS)
                    .map(|i| (i.to_string(), String::new()))
                    .collect()
            }),
            Some(Reason::Labels)
        );
    }
}
