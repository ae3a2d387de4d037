//! `chat_templates` and how static workers' templates reach the catalog.

use super::*;
use switchyard_runtime::{InstanceSpec, WorkerApi};

fn completions_spec(cfg: &ServeConfig, i: usize) -> InstanceSpec {
    let spec = cfg.instance_specs().swap_remove(i);
    assert_eq!(spec.api, WorkerApi::Completions);
    spec
}

fn user(text: &str) -> Vec<switchyard_protocol::ChatMessage> {
    serde_json::from_value(serde_json::json!([{ "role": "user", "content": text }])).unwrap()
}

#[test]
fn named_inline_and_file_templates_resolve_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.jinja");
    std::fs::write(&file, "file:{{ messages[0].content }}").unwrap();
    let yaml = format!(
        "chat_templates:\n  short: {{ inline: \"inline:{{{{ messages[0].content }}}}\" }}\n  \
         long: {{ path: {file} }}\nworkers:\n  \
         - {{ model: m, url: \"http://127.0.0.1:1\", api: completions, chat_template: short }}\n  \
         - {{ model: m, url: \"http://127.0.0.1:2\", api: completions, chat_template: long }}\n  \
         - {{ model: m, url: \"http://127.0.0.1:3\", api: completions, chat_template: {file} }}\n",
        file = file.display()
    );
    let cfg = ServeConfig::from_yaml(&yaml).unwrap();
    cfg.validate().unwrap();
    let catalog = cfg.template_catalog().unwrap();
    let render = |i: usize| {
        let spec = completions_spec(&cfg, i);
        catalog
            .resolve(&spec)
            .unwrap()
            .unwrap()
            .render(&user("hi"))
            .unwrap()
    };
    assert_eq!(render(0), "inline:hi");
    assert_eq!(render(1), "file:hi");
    // A path in the operator's own worker list is loaded under a catalog name, so the spec
    // itself carries a name, never the path.
    assert_eq!(
        completions_spec(&cfg, 2).chat_template.as_deref(),
        Some("workers.2")
    );
    assert_eq!(render(2), "file:hi");
}

#[test]
fn template_names_and_sources_are_validated_by_key() {
    let bad_name = ServeConfig::from_yaml(
        "chat_templates:\n  ../x: { inline: \"x\" }\nworkers:\n  - { model: m, url: \"http://127.0.0.1:1\" }\n",
    )
    .unwrap();
    let err = bad_name.validate().unwrap_err().to_string();
    assert!(err.contains("chat_templates.../x"), "{err}");
    let bad_text = ServeConfig::from_yaml(
        "chat_templates:\n  t: { inline: \"{% for %}\" }\nworkers:\n  - { model: m, url: \"http://127.0.0.1:1\" }\n",
    )
    .unwrap();
    let err = bad_text.validate().unwrap_err().to_string();
    assert!(err.contains("chat_templates.t"), "{err}");
    assert!(ServeConfig::from_yaml("chat_templates:\n  t: { file: x }\n").is_err());
}

#[test]
fn static_workers_pass_the_discovery_spec_check() {
    let cfg = ServeConfig::from_yaml(
        "workers:\n  - { model: \"bad model\", url: \"http://127.0.0.1:1\" }\n",
    )
    .unwrap();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("workers[0].model"), "{err}");
}
