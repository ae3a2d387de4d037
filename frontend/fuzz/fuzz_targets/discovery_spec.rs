//! An etcd value (or a Kubernetes-derived spec) as discovery receives it: arbitrary bytes
//! decoded as an `InstanceSpec`, checked, and its chat template resolved.
//!
//! Invariants: no panic, and every resolve returns (the template budget bounds an inline
//! template's render); a rejection never echoes the URL (it may carry credentials); an
//! accepted spec has bounded, printable names, an http(s) URL with a host, a template *name*
//! that can never be read as a path, and resolves without touching the file system (the
//! catalog here holds one template, so anything else must resolve to the default, an inline
//! text or a rejection).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_runtime::spec_check::{self, is_template_name, MAX_ID_BYTES, MAX_MODEL_BYTES};
use switchyard_runtime::templates::TemplateCatalog;
use switchyard_runtime::{ChatTemplate, InstanceSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<InstanceSpec>(data) else {
        return;
    };
    match spec_check::check(&spec) {
        Err(rejection) => {
            // Only URL-shaped values: a short fragment like " is not a valid UR" can occur in
            // the message's own words.
            if spec.url.len() >= 12 && spec.url.contains("://") {
                assert!(
                    !rejection.message.contains(&spec.url),
                    "a rejection echoed the URL"
                );
            }
        }
        Ok(()) => {
            assert!(!spec.id.is_empty() && spec.id.len() <= MAX_ID_BYTES);
            assert!(!spec.model.is_empty() && spec.model.len() <= MAX_MODEL_BYTES);
            assert!(!spec.id.chars().any(char::is_control));
            assert!(!spec.model.chars().any(char::is_control));
            // Schemes are case-insensitive (RFC 3986 §3.1): `Https://` is a valid https URL.
            let lower = spec.url.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("http://")
                .or_else(|| lower.strip_prefix("https://"))
                .expect("an accepted URL is http(s)");
            assert!(!rest.is_empty() && !rest.starts_with('/'), "no host");
            // Credentials live in the authority (before the path); `@` in a path is allowed.
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            assert!(!authority.contains('@'), "credentials in an accepted URL");
            if let Some(name) = &spec.chat_template {
                assert!(is_template_name(name), "a path-like template name passed");
                assert!(!name.contains('/') && !name.starts_with('.'));
            }
            let mut catalog = TemplateCatalog::default();
            catalog.insert("known", ChatTemplate::default());
            let _ = catalog.resolve(&spec);
        }
    }
});
