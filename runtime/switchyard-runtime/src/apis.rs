//! The HTTP APIs a worker serves natively (`apis: [chat, completions, responses, messages]`).
//!
//! Every worker serves chat and/or completions (its `api` says which); some engines also
//! serve OpenAI's Responses API or Anthropic's Messages API themselves. A request on one of
//! those routes is relayed as the client sent it to an instance that lists the API, and
//! translated onto chat for any other instance. The list is untrusted input from discovery,
//! so it is kept as names and checked by [`check`] (through [`crate::spec_check`]) rather
//! than rejected by the JSON decoder with a generic parse error.

use serde::{Deserialize, Serialize};

use crate::{InstanceSpec, WorkerApi};

/// One API a worker may serve natively. Also the `WorkerPool` CRD's `apis` items, so the
/// schema enumerates the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Chat,
    Completions,
    /// OpenAI Responses, `POST /v1/responses`.
    Responses,
    /// Anthropic Messages, `POST /v1/messages`.
    Messages,
}

impl Api {
    pub const ALL: [Api; 4] = [Api::Chat, Api::Completions, Api::Responses, Api::Messages];

    pub fn as_str(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Completions => "completions",
            Api::Responses => "responses",
            Api::Messages => "messages",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The path the worker serves it on.
    pub fn path(self) -> &'static str {
        match self {
            Api::Chat => "/v1/chat/completions",
            Api::Completions => "/v1/completions",
            Api::Responses => "/v1/responses",
            Api::Messages => "/v1/messages",
        }
    }
}

/// Names a spec may list, for error messages.
const KNOWN: &str = "chat, completions, responses, messages";

/// Checks a spec's `apis`: known names, each at most once. `chat` and `completions` follow
/// from `api` (a chat worker serves both, a completions-only one only completions), so
/// listing them is allowed but adds nothing — except that listing `chat` for a
/// completions-only worker is a contradiction and refused, rather than silently ignored.
pub fn check(spec: &InstanceSpec) -> Result<(), String> {
    let mut seen = Vec::with_capacity(spec.apis.len());
    for name in &spec.apis {
        let Some(api) = Api::from_name(name) else {
            // A name from discovery is echoed only when it is short and printable.
            let shown = if name.len() <= 32 && name.bytes().all(|b| b.is_ascii_graphic()) {
                format!("`{name}`")
            } else {
                "a name".to_owned()
            };
            return Err(format!("apis lists {shown} that is not one of {KNOWN}"));
        };
        if seen.contains(&api) {
            return Err(format!("apis lists `{}` twice", api.as_str()));
        }
        seen.push(api);
    }
    if spec.api == WorkerApi::Completions && seen.contains(&Api::Chat) {
        return Err(
            "apis lists `chat` but the worker is completions-only (`api: completions`)".into(),
        );
    }
    Ok(())
}

impl InstanceSpec {
    /// Whether this worker serves `api` natively (the agent APIs only when listed).
    pub fn serves(&self, api: Api) -> bool {
        match api {
            Api::Chat => self.api == WorkerApi::Chat,
            Api::Completions => true,
            Api::Responses | Api::Messages => self.apis.iter().any(|name| name == api.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(apis: &[&str]) -> InstanceSpec {
        let mut spec = InstanceSpec::new("i", "m", "http://h:1");
        spec.apis = apis.iter().map(|s| (*s).to_owned()).collect();
        spec
    }

    #[test]
    fn the_default_serves_chat_and_completions_only() {
        let s = spec(&[]);
        assert!(check(&s).is_ok());
        assert!(s.serves(Api::Chat) && s.serves(Api::Completions));
        assert!(!s.serves(Api::Responses) && !s.serves(Api::Messages));
    }

    #[test]
    fn listed_agent_apis_are_served() {
        let s = spec(&["chat", "responses"]);
        assert!(check(&s).is_ok());
        assert!(s.serves(Api::Responses) && !s.serves(Api::Messages));
        assert!(s.serves(Api::Chat) && s.serves(Api::Completions));
    }

    #[test]
    fn unknown_duplicate_and_inconsistent_lists_are_refused() {
        let err = |apis: &[&str]| check(&spec(apis)).unwrap_err();
        assert!(err(&["chat", "completions", "embeddings"]).contains("`embeddings`"));
        assert!(err(&["chat", "completions", "x\ny"]).contains("a name"));
        assert!(err(&["chat", "chat", "completions"]).contains("twice"));
        let mut c = spec(&["chat", "completions"]);
        c.api = WorkerApi::Completions;
        assert!(check(&c).unwrap_err().contains("completions-only"));
        c.apis = vec!["completions".into(), "messages".into()];
        assert!(check(&c).is_ok());
        assert!(c.serves(Api::Messages) && !c.serves(Api::Chat));
    }
}
