//! The one-release bridge from the flat configuration to the sectioned one: a table of old
//! key path → new key path, applied to the parsed YAML before it is typed. Every old key a
//! file uses is moved to its new place and reported once (the caller logs a deprecation
//! warning naming the new key); an old key and its new spelling both set is an error naming
//! both, so a half-migrated file never silently prefers one of them.
//!
//! Rules run in table order: a renamed field inside an old section (`limits.body_timeout_ms`)
//! comes before the move of the section itself (`limits`), so the field lands under its new
//! name and the rest of the section merges into its new place key by key.

use serde_yaml::{Mapping, Value};

/// One old key the file used, and where its value went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    pub old: String,
    pub new: String,
}

impl std::fmt::Display for Deprecation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "config key `{}` is deprecated and will be removed in the next release; write `{}`",
            self.old, self.new
        )
    }
}

/// Which values a rule applies to: some old keys share their name with a new section.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Any,
    /// `discovery: etcd` (the new `discovery:` is a mapping).
    Scalar,
    /// `plugins: [...]` (the new `plugins:` is a mapping).
    Sequence,
}

/// How an old value becomes a new one.
#[derive(Debug, Clone, Copy)]
enum Convert {
    Keep,
    /// An integer of milliseconds becomes `"<n>ms"`.
    Millis,
    /// An integer of seconds becomes `"<n>s"`.
    Secs,
}

struct Rule {
    old: &'static str,
    new: &'static str,
    shape: Shape,
    convert: Convert,
}

const fn mv(old: &'static str, new: &'static str) -> Rule {
    Rule {
        old,
        new,
        shape: Shape::Any,
        convert: Convert::Keep,
    }
}

const fn ms(old: &'static str, new: &'static str) -> Rule {
    Rule {
        old,
        new,
        shape: Shape::Any,
        convert: Convert::Millis,
    }
}

/// Every key the flat configuration accepted that has a new place (docs/configuration.md,
/// "Deprecated keys", is this table).
const RULES: &[Rule] = &[
    // discovery
    Rule {
        old: "discovery",
        new: "discovery.kind",
        shape: Shape::Scalar,
        convert: Convert::Keep,
    },
    mv("etcd", "discovery.etcd.endpoint"),
    mv("etcd_prefix", "discovery.etcd.prefix"),
    mv("etcd_auth", "discovery.etcd.auth"),
    mv("kubernetes_namespace", "discovery.kubernetes.namespace"),
    mv("kubernetes", "discovery.kubernetes"),
    mv("worker_api_keys", "discovery.worker_api_keys"),
    mv("worker_api_keys_dir", "discovery.worker_api_keys_dir"),
    // events
    mv("nats", "events.nats.url"),
    mv("nats_auth", "events.nats.auth"),
    ms("load_scrape.interval_ms", "events.load_scrape.interval"),
    ms("load_scrape.timeout_ms", "events.load_scrape.timeout"),
    ms("load_scrape.stale_ms", "events.load_scrape.stale"),
    mv("load_scrape", "events.load_scrape"),
    // routing
    Rule {
        old: "kv.approx_ttl_secs",
        new: "routing.kv.approx_ttl",
        shape: Shape::Any,
        convert: Convert::Secs,
    },
    mv("kv", "routing.kv"),
    mv("tokenizer", "routing.tokenizer"),
    mv("tokenizers", "routing.tokenizers"),
    mv("record_decisions", "routing.record_decisions"),
    mv("disaggregation", "routing.disaggregation"),
    // plugins
    Rule {
        old: "plugins",
        new: "plugins.modules",
        shape: Shape::Sequence,
        convert: Convert::Keep,
    },
    ms("plugin_host.epochTick", "plugins.host.epoch_tick"),
    mv("plugin_host.maxInstances", "plugins.host.max_instances"),
    mv(
        "plugin_host.maxMemoryBytes",
        "plugins.host.max_memory_bytes",
    ),
    mv("plugin_host.rngSeed", "plugins.host.rng_seed"),
    mv("plugin_host", "plugins.host"),
    mv(
        "plugin_quarantine.faultThreshold",
        "plugins.quarantine.fault_threshold",
    ),
    ms(
        "plugin_quarantine.initialBackoff",
        "plugins.quarantine.initial_backoff",
    ),
    ms(
        "plugin_quarantine.maxBackoff",
        "plugins.quarantine.max_backoff",
    ),
    mv(
        "plugin_quarantine.faultRate",
        "plugins.quarantine.fault_rate",
    ),
    mv(
        "plugin_quarantine.slowFraction",
        "plugins.quarantine.slow_fraction",
    ),
    mv("plugin_quarantine", "plugins.quarantine"),
    // reliability
    ms(
        "upstream.first_byte_timeout_ms",
        "reliability.upstream.first_byte_timeout",
    ),
    ms(
        "upstream.stall_timeout_ms",
        "reliability.upstream.stall_timeout",
    ),
    ms(
        "upstream.connect_timeout_ms",
        "reliability.upstream.connect_timeout",
    ),
    ms(
        "upstream.pool_idle_timeout_ms",
        "reliability.upstream.pool_idle_timeout",
    ),
    mv("upstream", "reliability.upstream"),
    mv("retry_budget", "reliability.retry_budget"),
    ms("health.eject_base_ms", "reliability.health.eject_base"),
    ms("health.eject_max_ms", "reliability.health.eject_max"),
    ms(
        "health.trial_timeout_ms",
        "reliability.health.trial_timeout",
    ),
    ms("health.degraded_ms", "reliability.health.degraded"),
    mv("health", "reliability.health"),
    ms("probe.interval_ms", "reliability.probe.interval"),
    ms("probe.timeout_ms", "reliability.probe.timeout"),
    mv("probe", "reliability.probe"),
    ms("canary.idle_ms", "reliability.canary.idle"),
    ms("canary.timeout_ms", "reliability.canary.timeout"),
    mv("canary", "reliability.canary"),
    ms(
        "served_model_check.interval_ms",
        "reliability.served_model_check.interval",
    ),
    ms(
        "served_model_check.timeout_ms",
        "reliability.served_model_check.timeout",
    ),
    mv("served_model_check", "reliability.served_model_check"),
    ms(
        "overload.queue_timeout_ms",
        "reliability.overload.queue_timeout",
    ),
    mv("overload", "reliability.overload"),
    ms(
        "flow_control.max_wait_ms",
        "reliability.flow_control.max_wait",
    ),
    ms("flow_control.tick_ms", "reliability.flow_control.tick"),
    mv("flow_control", "reliability.flow_control"),
    mv("migration_limit", "reliability.migration_limit"),
    // http
    mv("listen", "http.listen"),
    mv("tls", "http.tls"),
    ms(
        "limits.header_read_timeout_ms",
        "http.limits.header_read_timeout",
    ),
    ms("limits.shutdown_grace_ms", "http.limits.shutdown_grace"),
    ms("limits.body_timeout_ms", "http.limits.body_timeout"),
    ms(
        "limits.body_idle_timeout_ms",
        "http.limits.body_idle_timeout",
    ),
    ms("limits.drain_delay_ms", "http.limits.drain_delay"),
    ms("limits.body_budget_wait_ms", "http.limits.body_budget_wait"),
    ms("limits.tcp_keepalive_ms", "http.limits.tcp_keepalive"),
    ms("limits.write_timeout_ms", "http.limits.write_timeout"),
    mv("limits", "http.limits"),
    mv("admin_token", "http.admin_token"),
    mv("admin", "http.admin"),
];

/// Every `(old, new)` pair, for the documentation test.
pub fn table() -> impl Iterator<Item = (&'static str, &'static str)> {
    RULES.iter().map(|r| (r.old, r.new))
}

/// Moves every old key in `root` to its new place; returns what moved, in table order.
pub fn rewrite(root: &mut Value) -> Result<Vec<Deprecation>, String> {
    let Value::Mapping(map) = root else {
        return Ok(Vec::new());
    };
    let mut moved = Vec::new();
    for rule in RULES {
        let old: Vec<&str> = rule.old.split('.').collect();
        let fits = match (peek(map, &old), rule.shape) {
            (None, _) => false,
            (Some(_), Shape::Any) => true,
            (Some(v), Shape::Scalar) => !matches!(v, Value::Mapping(_) | Value::Sequence(_)),
            (Some(v), Shape::Sequence) => matches!(v, Value::Sequence(_)),
        };
        if !fits {
            continue;
        }
        let Some(value) = take(map, &old) else {
            continue;
        };
        let value = convert(value, rule.convert);
        let new: Vec<&str> = rule.new.split('.').collect();
        insert(map, &new, value, rule.old, rule.new)?;
        moved.push(Deprecation {
            old: rule.old.to_owned(),
            new: rule.new.to_owned(),
        });
    }
    Ok(moved)
}

fn peek<'a>(map: &'a Mapping, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let value = map.get(*first)?;
    if rest.is_empty() {
        return Some(value);
    }
    match value {
        Value::Mapping(inner) => peek(inner, rest),
        _ => None,
    }
}

/// Removes the value at `path`, and any mapping it leaves empty (so `limits:` whose every
/// key moved is not reported as a key of its own).
fn take(map: &mut Mapping, path: &[&str]) -> Option<Value> {
    let (first, rest) = path.split_first()?;
    if rest.is_empty() {
        return map.remove(*first);
    }
    let Some(Value::Mapping(inner)) = map.get_mut(*first) else {
        return None;
    };
    let taken = take(inner, rest);
    if taken.is_some() && inner.is_empty() {
        map.remove(*first);
    }
    taken
}

fn convert(value: Value, how: Convert) -> Value {
    let unit = match how {
        Convert::Keep => return value,
        Convert::Millis => "ms",
        Convert::Secs => "s",
    };
    // Only whole numbers were valid before; anything else is left for the typed parse to
    // reject under the new key's name.
    match value.as_u64() {
        Some(n) => Value::String(format!("{n}{unit}")),
        None => value,
    }
}

/// Puts `value` at `path`; a mapping merges into an existing mapping key by key.
fn insert(
    map: &mut Mapping,
    path: &[&str],
    value: Value,
    old: &str,
    new: &str,
) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let key = Value::String((*first).to_owned());
    if rest.is_empty() {
        return match map.get_mut(&key) {
            None => {
                map.insert(key, value);
                Ok(())
            }
            Some(Value::Mapping(existing)) => match value {
                Value::Mapping(incoming) => merge(existing, incoming, old, new),
                _ => Err(both(old, new)),
            },
            Some(_) => Err(both(old, new)),
        };
    }
    let slot = map
        .entry(key)
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    match slot {
        Value::Mapping(inner) => insert(inner, rest, value, old, new),
        _ => Err(format!(
            "`{old}` moves to `{new}`, but `{first}` is set to something that is not a section"
        )),
    }
}

fn merge(existing: &mut Mapping, incoming: Mapping, old: &str, new: &str) -> Result<(), String> {
    for (k, v) in incoming {
        let name = match &k {
            Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        };
        insert(
            existing,
            &[name.as_str()],
            v,
            &format!("{old}.{name}"),
            &format!("{new}.{name}"),
        )?;
    }
    Ok(())
}

fn both(old: &str, new: &str) -> String {
    format!("`{old}` (deprecated) and `{new}` are both set; keep only `{new}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(yaml: &str) -> (Value, Vec<Deprecation>) {
        let mut value: Value = serde_yaml::from_str(yaml).unwrap();
        let moved = rewrite(&mut value).unwrap();
        (value, moved)
    }

    fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
        let Value::Mapping(map) = value else {
            return None;
        };
        peek(map, &path.split('.').collect::<Vec<_>>())
    }

    #[test]
    fn old_keys_move_and_are_reported_once_each() {
        let (value, moved) = rewritten(
            "listen: 127.0.0.1:1\ndiscovery: etcd\netcd: http://e:2379\nlimits:\n  body_timeout_ms: 5000\n  max_body_bytes: 10\nplugins: [{ kind: scorer, name: a, path: /a.wasm }]\nplugin_host: { epochTick: 2, maxInstances: 4 }\nkv: { approx_ttl_secs: 60 }\n",
        );
        assert_eq!(
            at(&value, "http.listen").and_then(Value::as_str),
            Some("127.0.0.1:1")
        );
        assert_eq!(
            at(&value, "discovery.kind").and_then(Value::as_str),
            Some("etcd")
        );
        assert_eq!(
            at(&value, "discovery.etcd.endpoint").and_then(Value::as_str),
            Some("http://e:2379")
        );
        assert_eq!(
            at(&value, "http.limits.body_timeout").and_then(Value::as_str),
            Some("5000ms")
        );
        assert_eq!(
            at(&value, "http.limits.max_body_bytes").and_then(Value::as_u64),
            Some(10)
        );
        assert!(matches!(
            at(&value, "plugins.modules"),
            Some(Value::Sequence(_))
        ));
        assert_eq!(
            at(&value, "plugins.host.epoch_tick").and_then(Value::as_str),
            Some("2ms")
        );
        assert_eq!(
            at(&value, "plugins.host.max_instances").and_then(Value::as_u64),
            Some(4)
        );
        assert_eq!(
            at(&value, "routing.kv.approx_ttl").and_then(Value::as_str),
            Some("60s")
        );
        for old in ["listen", "limits", "plugin_host", "kv"] {
            assert!(at(&value, old).is_none(), "{old} left behind");
        }
        let olds: Vec<&str> = moved.iter().map(|d| d.old.as_str()).collect();
        assert_eq!(
            olds,
            [
                "discovery",
                "etcd",
                "kv.approx_ttl_secs",
                "plugins",
                "plugin_host.epochTick",
                "plugin_host.maxInstances",
                "listen",
                "limits.body_timeout_ms",
                "limits",
            ]
        );
        let first = moved[0].to_string();
        assert!(
            first.contains("`discovery`") && first.contains("`discovery.kind`"),
            "{first}"
        );
    }

    #[test]
    fn new_shape_is_left_alone() {
        let yaml = "http: { listen: 127.0.0.1:1 }\ndiscovery: { kind: static }\nplugins: { modules: [] }\n";
        let (value, moved) = rewritten(yaml);
        assert!(moved.is_empty(), "{moved:?}");
        assert_eq!(value, serde_yaml::from_str::<Value>(yaml).unwrap());
    }

    #[test]
    fn old_and_new_spelling_of_one_key_is_an_error_naming_both() {
        for (yaml, old, new) in [
            (
                "upstream: { first_byte_timeout_ms: 1000 }\nreliability: { upstream: { first_byte_timeout: 2s } }\n",
                "upstream.first_byte_timeout_ms",
                "reliability.upstream.first_byte_timeout",
            ),
            (
                "listen: 127.0.0.1:1\nhttp: { listen: 127.0.0.1:2 }\n",
                "listen",
                "http.listen",
            ),
            (
                "limits: { max_body_bytes: 1 }\nhttp: { limits: { max_body_bytes: 2 } }\n",
                "limits.max_body_bytes",
                "http.limits.max_body_bytes",
            ),
        ] {
            let mut value: Value = serde_yaml::from_str(yaml).unwrap();
            let err = rewrite(&mut value).unwrap_err();
            assert!(
                err.contains(&format!("`{old}`")) && err.contains(&format!("`{new}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn an_old_section_merges_beside_new_keys_of_the_same_section() {
        let (value, _) =
            rewritten("limits: { max_body_bytes: 1 }\nhttp: { limits: { max_headers: 9 } }\n");
        assert_eq!(
            at(&value, "http.limits.max_body_bytes").and_then(Value::as_u64),
            Some(1)
        );
        assert_eq!(
            at(&value, "http.limits.max_headers").and_then(Value::as_u64),
            Some(9)
        );
    }
}
