//! A WorkerPool's `apiKey`: the engine gets the key from the pool's Secret, each engine the
//! way it reads one, and the key never appears in the Deployment itself (only a
//! `secretKeyRef`) nor, where the engine reads an environment variable, in its argv.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use switchyard_k8s::workerpool::{EngineKind, WorkerPool};

/// Set on every engine with a key: a pool with a generic engine passes it on in its own args
/// as `$(SWITCHYARD_WORKER_API_KEY)`, which the kubelet expands.
pub const WORKER_API_KEY_ENV: &str = "SWITCHYARD_WORKER_API_KEY";

/// The variable the engine itself reads its key from, where it has one.
fn engine_env(engine: EngineKind) -> Option<&'static str> {
    match engine {
        // vLLM: `--api-key` or VLLM_API_KEY; llama.cpp: `--api-key` is declared with the
        // environment variable LLAMA_API_KEY; the mocker mirrors vLLM's flag.
        EngineKind::Vllm => Some("VLLM_API_KEY"),
        EngineKind::Llamacpp => Some("LLAMA_API_KEY"),
        EngineKind::Mocker => Some("SWITCHYARD_MOCKER_API_KEY"),
        EngineKind::Sglang | EngineKind::Trtllm | EngineKind::Generic => None,
    }
}

/// The key's environment variables, added to the engine container's own `env` (a variable the
/// pool already sets is left alone).
pub fn env(pool: &WorkerPool, env: &mut Vec<EnvVar>) {
    let Some(key) = &pool.spec.api_key else {
        return;
    };
    let from_secret = |name: &str| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: key.secret_name.clone(),
                key: key.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    for name in std::iter::once(WORKER_API_KEY_ENV).chain(engine_env(pool.spec.engine)) {
        if !env.iter().any(|e| e.name == name) {
            env.push(from_secret(name));
        }
    }
}

/// SGLang reads its key only from `--api-key`: added (as the kubelet-expanded variable) when
/// the pool's args do not pass one already.
pub fn args(pool: &WorkerPool, mut args: Vec<String>) -> Vec<String> {
    let sets_key = args
        .iter()
        .any(|a| a == "--api-key" || a.starts_with("--api-key="));
    if pool.spec.api_key.is_some()
        && pool.spec.engine == EngineKind::Sglang
        && !args.is_empty()
        && !sets_key
    {
        args.push("--api-key".to_owned());
        args.push(format!("$({WORKER_API_KEY_ENV})"));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool(engine: &str, args: &[&str]) -> WorkerPool {
        serde_json::from_value(
            json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "WorkerPool",
            "metadata": {"name": "p", "namespace": "team-a"},
            "spec": {"model": "m", "engine": engine,
                     "template": {"image": "i", "args": args,
                                  "env": [{"name": "LLAMA_API_KEY", "value": "pool-set"}]},
                     "apiKey": {"secretName": "llama-key"}}}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn names(env: &[EnvVar]) -> Vec<(&str, Option<&str>)> {
        env.iter()
            .map(|e| {
                let secret = e
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref())
                    .map(|s| s.key.as_str());
                (e.name.as_str(), secret)
            })
            .collect()
    }

    #[test]
    fn each_engine_reads_the_key_from_the_secret_its_own_way() {
        let mut env = Vec::new();
        env_of(&pool("vllm", &["serve", "x"]), &mut env);
        assert_eq!(
            names(&env),
            [
                (WORKER_API_KEY_ENV, Some("api-key")),
                ("VLLM_API_KEY", Some("api-key"))
            ]
        );
        let sglang = pool("sglang", &["python3", "-m", "sglang.launch_server"]);
        let args = args(&sglang, sglang.spec.template.args.clone());
        assert_eq!(
            &args[args.len() - 2..],
            ["--api-key", "$(SWITCHYARD_WORKER_API_KEY)"]
        );
        let already = pool("sglang", &["x", "--api-key=$(K)"]);
        assert_eq!(
            super::args(&already, already.spec.template.args.clone()).len(),
            2
        );
    }

    #[test]
    fn a_variable_the_pool_sets_itself_is_left_alone() {
        let p = pool("llamacpp", &["-m", "x"]);
        let mut env = p.spec.template.env.clone();
        env_of(&p, &mut env);
        assert_eq!(
            names(&env),
            [
                ("LLAMA_API_KEY", None),
                (WORKER_API_KEY_ENV, Some("api-key"))
            ]
        );
    }

    fn env_of(p: &WorkerPool, env: &mut Vec<EnvVar>) {
        super::env(p, env);
    }
}
