//! The top level: key paths in errors, the old flat layout read through `legacy`, and
//! cross-section validation.

use super::*;
use switchyard_runtime::{PolicyName, WorkerApi};

#[test]
fn unknown_keys_are_named_by_their_full_path() {
    for (yaml, key) in [
        ("routing:\n  polcy: p2c\n", "polcy"),
        ("workerz: []\n", "unknown key `workerz`"),
        (
            "reliability:\n  upstream:\n    bogus: 1\n",
            "unknown key `reliability.upstream.bogus`",
        ),
        (
            "http:\n  limits:\n    max_body_byte: 1\n",
            "unknown key `http.limits.max_body_byte`",
        ),
        (
            "discovery:\n  etcd:\n    endpoints: x\n",
            "unknown key `discovery.etcd.endpoints`",
        ),
    ] {
        let err = ServeConfig::from_yaml(yaml).unwrap_err();
        assert!(err.contains(key), "{yaml}: {err}");
    }
}

#[test]
fn a_bare_number_duration_names_the_key_and_the_accepted_form() {
    let err = ServeConfig::from_yaml("reliability:\n  upstream:\n    first_byte_timeout: 120\n")
        .unwrap_err();
    assert!(
        err.contains("reliability.upstream.first_byte_timeout")
            && err.contains("has no unit")
            && err.contains("500ms"),
        "{err}"
    );
}

const NEW: &str = "\
http:
  listen: 127.0.0.1:9000
  limits: { body_timeout: 5s, max_body_bytes: 2048 }
discovery:
  kind: static
routing:
  policy: session
  session_header: x-user
reliability:
  upstream: { first_byte_timeout: 2m, max_retries: 1 }
  health: { eject_base: 1s }
  migration_limit: 2
plugins:
  host: { epoch_tick: 2ms }
models:
  big: { policy: p2c }
workers:
  - { model: small, url: \"http://127.0.0.1:8001\", api: completions }
  - { model: big, url: \"http://127.0.0.1:8002\", weight: 2 }
";

const OLD: &str = "\
listen: 127.0.0.1:9000
limits: { body_timeout_ms: 5000, max_body_bytes: 2048 }
discovery: static
routing:
  policy: session
  session_header: x-user
upstream: { first_byte_timeout_ms: 120000, max_retries: 1 }
health: { eject_base_ms: 1000 }
migration_limit: 2
plugin_host: { epochTick: 2ms }
models:
  big: { policy: p2c }
workers:
  - { model: small, url: \"http://127.0.0.1:8001\", api: completions }
  - { model: big, url: \"http://127.0.0.1:8002\", weight: 2 }
";

#[test]
fn the_new_shape_parses_and_validates() {
    let (cfg, deprecated) = ServeConfig::from_yaml_reporting(NEW).unwrap();
    assert!(deprecated.is_empty(), "{deprecated:?}");
    cfg.validate().unwrap();
    assert_eq!(cfg.policy_for("big").policy, PolicyName::P2c);
    assert_eq!(cfg.policy_for("small").policy, PolicyName::Session);
    assert_eq!(cfg.reliability.upstream.first_byte_timeout_ms, 120_000);
    assert_eq!(cfg.http.limits.body_timeout_ms, 5_000);
    let specs = cfg.instance_specs();
    assert_eq!(specs[0].id, "127.0.0.1:8001");
    assert_eq!(specs[0].api, WorkerApi::Completions);
}

#[test]
fn the_old_flat_shape_still_reads_the_same_with_one_warning_per_key() {
    let (old, deprecated) = ServeConfig::from_yaml_reporting(OLD).unwrap();
    let (new, _) = ServeConfig::from_yaml_reporting(NEW).unwrap();
    assert_eq!(old, new);
    let pairs: Vec<(&str, &str)> = deprecated
        .iter()
        .map(|d| (d.old.as_str(), d.new.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("discovery", "discovery.kind"),
            ("plugin_host.epochTick", "plugins.host.epoch_tick"),
            (
                "upstream.first_byte_timeout_ms",
                "reliability.upstream.first_byte_timeout"
            ),
            ("upstream", "reliability.upstream"),
            ("health.eject_base_ms", "reliability.health.eject_base"),
            ("migration_limit", "reliability.migration_limit"),
            ("listen", "http.listen"),
            ("limits.body_timeout_ms", "http.limits.body_timeout"),
            ("limits", "http.limits"),
        ]
    );
}

#[test]
fn old_and_new_spelling_together_is_an_error_naming_both() {
    let err = ServeConfig::from_yaml("migration_limit: 1\nreliability: { migration_limit: 2 }\n")
        .unwrap_err();
    assert!(
        err.contains("`migration_limit`") && err.contains("`reliability.migration_limit`"),
        "{err}"
    );
}

#[test]
fn validation_names_the_bad_key() {
    let mut cfg = ServeConfig::default();
    cfg.workers.push(parse_worker_flag("m=ftp://x").unwrap());
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("workers[0].url"), "{err}");

    let err = ServeConfig::from_yaml("models:\n  m: { policy: nope }\n").unwrap_err();
    assert!(
        err.contains("`models.m.policy`: unknown policy `nope` (expected one of: round-robin"),
        "{err}"
    );
    let mut cfg = ServeConfig::default();
    cfg.workers
        .push(parse_worker_flag("m=http://127.0.0.1:1").unwrap());
    cfg.models.insert(
        "m".into(),
        PolicyConfig {
            policy: PolicyName::Session,
            session_fallback: PolicyName::Session,
            ..Default::default()
        },
    );
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("models.m.policy"), "{err}");

    let mut cfg = ServeConfig::default();
    cfg.workers
        .push(parse_worker_flag("m=http://127.0.0.1:1").unwrap());
    cfg.workers[0].chat_template = Some("/no/such/file.jinja".into());
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("workers[0].chat_template"), "{err}");

    assert!(ServeConfig::default()
        .validate()
        .unwrap_err()
        .to_string()
        .contains("workers"));
}

#[test]
fn every_deprecated_key_is_in_the_documentation() {
    let doc = include_str!("../../../docs/configuration.md");
    for (old, new) in legacy::table() {
        let row = format!("| `{old}` | `{new}` |");
        assert!(
            doc.contains(&row),
            "docs/configuration.md lacks the row {row}"
        );
    }
}

#[test]
fn the_readme_example_is_sectioned_and_reads_without_deprecations() {
    let readme = include_str!("../../../README.md");
    let start = readme.find("```yaml\nhttp:\n").unwrap() + "```yaml\n".len();
    let len = readme[start..].find("```").unwrap();
    let (cfg, deprecated) = ServeConfig::from_yaml_reporting(&readme[start..start + len]).unwrap();
    assert!(deprecated.is_empty(), "{deprecated:?}");
    assert_eq!(cfg.reliability.upstream.first_byte_timeout_ms, 120_000);
    assert_eq!(cfg.reliability.probe.interval_ms, 5_000);
}

/// Every YAML example in `docs/` and the README that is a frontend configuration (its top-level keys are the
/// frontend's sections, or keys of the old flat layout) reads without an error and without a
/// deprecation: the docs teach the sectioned layout, and a renamed key cannot go stale there.
#[test]
fn every_configuration_example_in_the_docs_reads_without_deprecations() {
    const SECTIONS: &[&str] = &[
        "http",
        "discovery",
        "events",
        "routing",
        "plugins",
        "reliability",
        "workers",
        "models",
        "chat_templates",
        "tenants",
        "tenants_file",
        "adapters",
        "telemetry",
    ];
    let old_tops: Vec<&str> = legacy::table()
        .map(|(old, _)| old.split('.').next().unwrap_or(old))
        .collect();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut checked = 0;
    let mut problems = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&docs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files.push(docs.join("../README.md"));
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, block) in text.split("```yaml\n").skip(1).enumerate() {
            let block = &block[..block.find("```").unwrap_or(block.len())];
            let Ok(serde_yaml::Value::Mapping(top)) = serde_yaml::from_str(block) else {
                continue;
            };
            let is_config = !top.is_empty()
                && top.keys().all(|k| {
                    k.as_str()
                        .is_some_and(|k| SECTIONS.contains(&k) || old_tops.contains(&k))
                });
            if !is_config {
                continue;
            }
            checked += 1;
            let name = format!("{} (yaml block {})", file.display(), n + 1);
            match ServeConfig::from_yaml_reporting(block) {
                Err(e) => problems.push(format!("{name}: {e}")),
                Ok((_, deprecated)) if !deprecated.is_empty() => {
                    problems.push(format!("{name}: deprecated keys {deprecated:?}"))
                }
                Ok(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The docs hold dozens of configuration examples: finding few means the filter broke.
    assert!(checked >= 15, "only {checked} configuration examples found");
}
