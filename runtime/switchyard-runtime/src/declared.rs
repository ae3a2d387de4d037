//! What discovery has said beyond the instance set: whether its first complete list has
//! arrived (a frontend is not ready before it: every model would look unknown), and which
//! models exist without a routable instance (a pool scaled to zero or rolling out answers 503
//! `model_unavailable` with `Retry-After`, so clients retry instead of giving up on a 404).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::spec_check;

/// Discovery's first list and its declared models; lock-free reads.
#[derive(Debug, Default)]
pub struct Declared {
    listed: AtomicBool,
    models: ArcSwap<BTreeSet<String>>,
}

impl Declared {
    /// Whether a discovery source has delivered its first complete list.
    pub fn listed(&self) -> bool {
        self.listed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_listed(&self) {
        self.listed.store(true, Ordering::Release);
    }

    /// Whether discovery declares `model` (it may have no instance right now).
    pub fn declares(&self, model: &str) -> bool {
        self.models.load().contains(model)
    }

    /// Replaces the declared models. Names come from an untrusted source: one that fails the
    /// spec check's model rule is dropped (and logged), so it can never be echoed back.
    pub(crate) fn replace(&self, source: &'static str, models: Vec<String>) {
        let set: BTreeSet<String> = models
            .into_iter()
            .filter(|model| match spec_check::check_model(model) {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(source, %error, "declared model name rejected");
                    false
                }
            })
            .collect();
        self.models.store(Arc::new(set));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_models_replace_each_other_and_bad_names_are_dropped() {
        let d = Declared::default();
        assert!(!d.listed());
        d.replace("kubernetes", vec!["meta/llama".into(), "bad\nname".into()]);
        assert!(d.declares("meta/llama"));
        assert!(!d.declares("bad\nname"));
        d.replace("kubernetes", vec!["qwen".into()]);
        assert!(
            !d.declares("meta/llama"),
            "a later list replaces the earlier"
        );
        assert!(d.declares("qwen"));
    }
}
