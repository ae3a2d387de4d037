//! The chat templates a frontend knows, by name, and how a spec picks one — without I/O.
//!
//! Template *files* are read only from the operator's own configuration, at startup, into
//! this catalog. A discovered spec can only name a catalog entry (`chat_template`) or carry a
//! small template inline (`chat_template_text`), so an etcd entry or Kubernetes object can
//! never make the frontend open a file, and resolving a spec never blocks on a file system.

use std::collections::HashMap;
use std::sync::Arc;

use crate::spec_check::{Reason, Rejection};
use crate::template::TemplateError;
use crate::{ChatTemplate, InstanceSpec, WorkerApi};
use switchyard_protocol::ChatMessage;

/// A short, ordinary conversation: what an inline template is tried on before it is admitted.
fn sample_conversation() -> Vec<ChatMessage> {
    const SAMPLE: &str = r#"[{"role":"system","content":"You are brief."},{"role":"user","content":"Hello"},{"role":"assistant","content":"Hi."},{"role":"user","content":"Bye"}]"#;
    // A constant that the tests parse; empty (still a fair trial) if it ever failed to.
    serde_json::from_str(SAMPLE).unwrap_or_default()
}

/// Compiled chat templates by name, plus the built-in default.
#[derive(Debug, Clone)]
pub struct TemplateCatalog {
    named: HashMap<String, Arc<ChatTemplate>>,
    /// Shared by every completions worker without a template of its own.
    default: Arc<ChatTemplate>,
}

impl Default for TemplateCatalog {
    fn default() -> Self {
        Self {
            named: HashMap::new(),
            default: Arc::new(ChatTemplate::default()),
        }
    }
}

impl TemplateCatalog {
    /// Adds (or replaces) a named template.
    pub fn insert(&mut self, name: impl Into<String>, template: ChatTemplate) {
        self.named.insert(name.into(), Arc::new(template));
    }

    pub fn contains(&self, name: &str) -> bool {
        self.named.contains_key(name)
    }

    /// The template a spec's worker needs: `None` for chat workers (they apply their own),
    /// otherwise its inline template, its named template, or the default. The spec must have
    /// passed [`crate::spec_check::check`] (which bounds the inline template's size).
    pub fn resolve(&self, spec: &InstanceSpec) -> Result<Option<Arc<ChatTemplate>>, Rejection> {
        if spec.api != WorkerApi::Completions {
            return Ok(None);
        }
        if let Some(text) = &spec.chat_template_text {
            let template = ChatTemplate::from_source(text.clone())
                .map_err(|e| Rejection::new(Reason::ChatTemplate, e.to_string()))?;
            // A template that blows its budget on an ordinary conversation would fail (after
            // burning its fuel) on every request: refuse it at the door. Other render errors
            // (`raise_exception` on roles it does not support) are the requests' business.
            if let Err(e @ TemplateError::Budget(_)) = template.render(&sample_conversation()) {
                return Err(Rejection::new(Reason::ChatTemplate, e.to_string()));
            }
            return Ok(Some(Arc::new(template)));
        }
        match &spec.chat_template {
            Some(name) => self.named.get(name).cloned().map(Some).ok_or_else(|| {
                Rejection::new(
                    Reason::ChatTemplate,
                    format!("no chat template named `{name}` in the frontend's `chat_templates`"),
                )
            }),
            None => Ok(Some(Arc::clone(&self.default))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completions(id: &str) -> InstanceSpec {
        let mut spec = InstanceSpec::new(id, "m", "http://h:1");
        spec.api = WorkerApi::Completions;
        spec
    }

    #[test]
    fn an_inline_template_that_spins_is_rejected_at_admission() {
        let catalog = TemplateCatalog::default();
        let mut spec = completions("a");
        spec.chat_template_text = Some(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
                .into(),
        );
        let rejection = catalog.resolve(&spec).unwrap_err();
        assert_eq!(rejection.reason, Reason::ChatTemplate);
        assert!(
            rejection.message.contains("budget"),
            "{}",
            rejection.message
        );
    }

    #[test]
    fn an_inline_template_that_raises_on_the_sample_is_still_admitted() {
        let catalog = TemplateCatalog::default();
        let mut spec = completions("a");
        spec.chat_template_text = Some(
            "{% if messages[0].role == 'system' %}{{ raise_exception('no system') }}{% endif %}"
                .into(),
        );
        assert!(catalog.resolve(&spec).unwrap().is_some());
    }

    #[test]
    fn chat_workers_need_no_template() {
        let catalog = TemplateCatalog::default();
        let spec = InstanceSpec::new("a", "m", "http://h:1");
        assert!(catalog.resolve(&spec).unwrap().is_none());
    }

    #[test]
    fn names_resolve_against_the_catalog_only() {
        let mut catalog = TemplateCatalog::default();
        catalog.insert(
            "plain",
            ChatTemplate::from_source("{{ messages[0].content }}".into()).unwrap(),
        );
        let mut spec = completions("a");
        spec.chat_template = Some("plain".into());
        let template = catalog.resolve(&spec).unwrap().unwrap();
        let msgs: Vec<switchyard_protocol::ChatMessage> =
            serde_json::from_str(r#"[{"role":"user","content":"hi"}]"#).unwrap();
        assert_eq!(template.render(&msgs).unwrap(), "hi");
        spec.chat_template = Some("missing".into());
        assert_eq!(
            catalog.resolve(&spec).unwrap_err().reason,
            Reason::ChatTemplate
        );
    }

    #[test]
    fn inline_templates_compile_and_bad_ones_are_rejected() {
        let catalog = TemplateCatalog::default();
        let mut spec = completions("a");
        spec.chat_template_text = Some("[{{ messages | length }}]".into());
        assert!(catalog.resolve(&spec).unwrap().is_some());
        spec.chat_template_text = Some("{% for %}".into());
        assert_eq!(
            catalog.resolve(&spec).unwrap_err().reason,
            Reason::ChatTemplate
        );
    }

    #[test]
    fn the_default_is_shared() {
        let catalog = TemplateCatalog::default();
        let a = catalog.resolve(&completions("a")).unwrap().unwrap();
        let b = catalog.resolve(&completions("b")).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
