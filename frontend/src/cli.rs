//! Command-line interface: one binary, subcommands per role.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{parse_worker_flag, ConfigError, DiscoveryKind, ServeConfig};
use crate::env_names as env;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "OpenAI-compatible frontend and router for LLM serving, extensible with WebAssembly plugins."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the frontend: OpenAI API in front of worker instances.
    Serve(ServeArgs),
    /// Run a simulated GPU worker (OpenAI-compatible) for tests, demos and load tests;
    /// optionally registered in etcd (`--etcd`) and publishing KV/load events to NATS (`--nats`).
    Mocker(crate::mocker_cmd::MockerCmd),
    /// Sidecar: keep an etcd registration for a worker while its /health answers 200.
    Register(crate::register_cmd::RegisterCmd),
    /// Bridge a vLLM engine's ZMQ KV events to NATS, re-hashed into Switchyard block hashes.
    KvBridge(crate::kv_bridge_cmd::KvBridgeCmd),
    /// Run the frontend with three in-process mockers: no external services needed.
    Demo(DemoArgs),
    /// Tools for plugin authors: check, bench and replay WebAssembly routing plugins.
    #[command(subcommand)]
    Plugin(crate::plugin_cli::PluginCommand),
}

/// Flags of `switchyard serve`. Each also reads a `SWITCHYARD_*` variable and a YAML key.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// YAML configuration file (every flag has a key there; flags win).
    #[arg(long, env = env::CONFIG, value_name = "FILE")]
    pub config: Option<String>,
    /// Address to listen on [default: 0.0.0.0:8000].
    #[arg(long, env = env::LISTEN, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// A static worker, `MODEL=URL` (repeatable; env: comma-separated), optionally followed by
    /// `;key=value` worker options: `engine` (vllm, sglang, trtllm, llamacpp, mocker, generic),
    /// `health_path`, `id`, `api`, `weight`, `chat_template`, `role` (both, prefill, decode),
    /// `bootstrap_port`.
    #[arg(long = "worker", env = env::WORKERS, value_name = "MODEL=URL[;key=value…]", value_delimiter = ',')]
    pub workers: Vec<String>,
    /// Where instances come from [default: static].
    #[arg(long, env = env::DISCOVERY, value_enum)]
    pub discovery: Option<DiscoveryKind>,
    /// etcd endpoint for `--discovery etcd`.
    #[arg(long, env = env::ETCD, value_name = "URL")]
    pub etcd: Option<String>,
    /// etcd key prefix instances are registered under; must start and end with `/`
    /// [default: /switchyard/instances/].
    #[arg(long = "etcd-prefix", env = env::ETCD_PREFIX, value_name = "PREFIX")]
    pub etcd_prefix: Option<String>,
    /// Namespaces watched by `--discovery kubernetes`, comma-separated (empty: every namespace).
    #[arg(long, env = env::KUBERNETES_NAMESPACE, value_name = "NS[,NS…]")]
    pub kubernetes_namespace: Option<String>,
    /// NATS server for KV-cache and load events.
    #[arg(long, env = env::NATS, value_name = "URL")]
    pub nats: Option<String>,
    #[command(flatten)]
    pub secure: Box<SecureLinkArgs>,
    /// Hugging Face `tokenizer.json` for prefix hashing over token ids (every model; YAML
    /// `tokenizers:` sets per-model files). Without it, prefix blocks are prompt bytes.
    #[arg(long, env = env::TOKENIZER, value_name = "PATH")]
    pub tokenizer: Option<String>,
    /// Native routing policy: round-robin, random, p2c, least-loaded, kv, session [default: kv].
    #[arg(long, env = env::POLICY, value_name = "NAME")]
    pub policy: Option<String>,
    /// Header carrying the session key for the `session` policy [default: x-session-id].
    #[arg(long, env = env::SESSION_HEADER, value_name = "NAME")]
    pub session_header: Option<String>,
    /// A Wasm plugin, `KIND=PATH` (repeatable).
    #[arg(long = "plugin", env = env::PLUGINS, value_name = "KIND=PATH", value_delimiter = ',')]
    pub plugins: Vec<String>,
    /// Record every routing decision's inputs and outputs to FILE (JSONL) for `plugin replay`.
    #[arg(long, env = env::RECORD_DECISIONS, value_name = "FILE")]
    pub record_decisions: Option<String>,
    /// Keep compiled plugins in DIR (created 0700) so restarts and replicas sharing it skip
    /// compiling (`plugin_host` cache, docs/plugins.md).
    #[arg(long, env = env::PLUGIN_CACHE_DIR, value_name = "DIR")]
    pub plugin_cache_dir: Option<std::path::PathBuf>,
    /// Re-issue a stream that fails mid-way at most N times (0 = off).
    #[arg(long, env = env::MIGRATION_LIMIT, value_name = "N")]
    pub migration_limit: Option<u32>,
    /// Extra instances tried when one fails before its first byte [default: 2].
    #[arg(long, env = env::MAX_RETRIES, value_name = "N")]
    pub max_retries: Option<u32>,
    /// Bearer token for the /admin API (disabled without one).
    #[arg(long, env = env::ADMIN_TOKEN, value_name = "TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Largest accepted request body in bytes [default: 16 MiB].
    #[arg(long, env = env::MAX_BODY_BYTES, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// YAML file with the tenant list (API keys, models, limits); reloaded when it changes.
    #[arg(long = "tenants", env = env::TENANTS, value_name = "FILE")]
    pub tenants_file: Option<String>,
    /// Directory of worker API keys, one file per key named after it (a mounted Secret);
    /// discovered workers name theirs with `api_key_name`.
    #[arg(long, env = env::WORKER_API_KEYS_DIR, value_name = "DIR")]
    pub worker_api_keys_dir: Option<String>,
    #[command(flatten)]
    pub admin: Box<AdminArgs>,
}

/// Where the admin API listens and where its tokens come from.
#[derive(Debug, Clone, Default, Args)]
pub struct AdminArgs {
    /// Address of the admin API's own listener [default: 127.0.0.1:8001]; it starts only
    /// with an admin token.
    #[arg(long = "admin-listen", env = env::ADMIN_LISTEN, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// File holding the admin token (keeps it off the command line).
    #[arg(long = "admin-token-file", env = env::ADMIN_TOKEN_FILE, value_name = "FILE")]
    pub admin_token_file: Option<String>,
    /// Token that data-plane requests send as `x-switchyard-explain` (not the admin token).
    #[arg(long = "explain-token", env = env::EXPLAIN_TOKEN, value_name = "TOKEN", hide_env_values = true)]
    pub explain_token: Option<String>,
    /// File holding the explain token.
    #[arg(long = "explain-token-file", env = env::EXPLAIN_TOKEN_FILE, value_name = "FILE")]
    pub explain_token_file: Option<String>,
}

impl AdminArgs {
    fn apply(self, config: &mut ServeConfig) -> Result<(), ConfigError> {
        let admin = &mut config.http.admin;
        if let Some(v) = self.admin_listen {
            admin.listen = v;
        }
        if self.admin_token_file.is_some() {
            admin.token_file = self.admin_token_file;
        }
        if self.explain_token.is_some() {
            admin.explain_token = self.explain_token;
        }
        if self.explain_token_file.is_some() {
            admin.explain_token_file = self.explain_token_file;
        }
        admin
            .read_token_files(&mut config.http.admin_token)
            .map_err(|message| ConfigError::Invalid {
                key: "http.admin".into(),
                message,
            })
    }
}

impl ServeArgs {
    /// File, then flags/env over it, then validation.
    pub fn into_config(self) -> Result<ServeConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => ServeConfig::from_yaml_file(path)?,
            None => ServeConfig::default(),
        };
        if let Some(v) = self.listen {
            config.http.listen = v;
        }
        for flag in &self.workers {
            let worker = parse_worker_flag(flag).map_err(|message| ConfigError::Invalid {
                key: "--worker".into(),
                message,
            })?;
            config.workers.push(worker);
        }
        if let Some(v) = self.discovery {
            config.discovery.kind = v;
        }
        if self.etcd.is_some() {
            config.discovery.etcd.endpoint = self.etcd;
        }
        if self.etcd_prefix.is_some() {
            config.discovery.etcd.prefix = self.etcd_prefix;
        }
        if self.kubernetes_namespace.is_some() {
            config.discovery.kubernetes.namespace = self.kubernetes_namespace;
        }
        if self.nats.is_some() {
            config.events.nats.url = self.nats;
        }
        (*self.secure).apply(&mut config);
        if self.tokenizer.is_some() {
            config.routing.tokenizer = self.tokenizer;
        }
        if let Some(v) = self.policy {
            // Parsed here rather than by clap, so a bad name is reported like one from the
            // file: by its key, ``invalid `routing.policy`: unknown policy …``.
            config.routing.default.policy = v.parse().map_err(|message| ConfigError::Invalid {
                key: "routing.policy".into(),
                message,
            })?;
        }
        if let Some(v) = self.session_header {
            config.routing.default.session_header = v;
        }
        for flag in &self.plugins {
            let plugin = crate::plugins::parse_plugin_flag(flag).map_err(|message| {
                ConfigError::Invalid {
                    key: "--plugin".into(),
                    message,
                }
            })?;
            config.plugins.modules.push(plugin);
        }
        if self.record_decisions.is_some() {
            config.routing.record_decisions = self.record_decisions;
        }
        if self.plugin_cache_dir.is_some() {
            config.plugins.host.cache_dir = self.plugin_cache_dir;
        }
        if let Some(v) = self.migration_limit {
            config.reliability.migration_limit = v;
        }
        if let Some(v) = self.max_retries {
            config.reliability.upstream.max_retries = v;
        }
        if self.admin_token.is_some() {
            config.http.admin_token = self.admin_token;
        }
        if let Some(v) = self.max_body_bytes {
            config.http.limits.max_body_bytes = v;
        }
        if self.tenants_file.is_some() {
            config.tenants_file = self.tenants_file;
        }
        if self.worker_api_keys_dir.is_some() {
            config.discovery.worker_api_keys_dir = self.worker_api_keys_dir;
        }
        (*self.admin).apply(&mut config)?;
        config.validate()?;
        Ok(config)
    }
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address the demo frontend listens on.
    #[arg(long, default_value = "127.0.0.1:8000", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Address of the admin API and the routing console.
    #[arg(
        long = "admin-listen",
        default_value = "127.0.0.1:8001",
        value_name = "ADDR"
    )]
    pub admin_listen: SocketAddr,
    /// Number of in-process mocker workers.
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// Routing policy.
    #[arg(long, value_enum, default_value_t = switchyard_runtime::PolicyName::P2c)]
    pub policy: switchyard_runtime::PolicyName,
    /// A Wasm plugin, `KIND=PATH` (repeatable), e.g. `scorer=plugins/target/wasm/least-loaded.wasm`.
    #[arg(long = "plugin", value_name = "KIND=PATH")]
    pub plugins: Vec<String>,
}

/// Credentials and TLS for the etcd and NATS links (YAML `discovery.etcd.auth:` /
/// `events.nats.auth:`). Every secret is a *file* path: secrets never go on a command line.
#[derive(Debug, Clone, Default, Args)]
pub struct SecureLinkArgs {
    /// etcd user (role-based auth); needs `--etcd-password-file`.
    #[arg(long, env = env::ETCD_USER, value_name = "NAME")]
    pub etcd_user: Option<String>,
    /// File holding the etcd user's password.
    #[arg(long, env = env::ETCD_PASSWORD_FILE, value_name = "FILE")]
    pub etcd_password_file: Option<PathBuf>,
    /// PEM CA of the etcd server certificates (turns TLS on; use https:// endpoints).
    #[arg(long, env = env::ETCD_CA, value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// PEM client certificate for etcd (with `--etcd-key`).
    #[arg(long, env = env::ETCD_CERT, value_name = "FILE")]
    pub etcd_cert: Option<PathBuf>,
    #[arg(long, env = env::ETCD_KEY, value_name = "FILE")]
    pub etcd_key: Option<PathBuf>,
    /// File holding the NATS authorization token.
    #[arg(long, env = env::NATS_TOKEN_FILE, value_name = "FILE")]
    pub nats_token_file: Option<PathBuf>,
    /// NATS user; needs `--nats-password-file`.
    #[arg(long, env = env::NATS_USER, value_name = "NAME")]
    pub nats_user: Option<String>,
    #[arg(long, env = env::NATS_PASSWORD_FILE, value_name = "FILE")]
    pub nats_password_file: Option<PathBuf>,
    /// NATS `.creds` file (JWT + nkey seed).
    #[arg(long, env = env::NATS_CREDS, value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// File holding an nkey seed.
    #[arg(long, env = env::NATS_NKEY_FILE, value_name = "FILE")]
    pub nats_nkey_file: Option<PathBuf>,
    /// PEM CA of the NATS server certificate (turns TLS on).
    #[arg(long, env = env::NATS_CA, value_name = "FILE")]
    pub nats_ca: Option<PathBuf>,
    /// PEM client certificate for NATS (with `--nats-key`).
    #[arg(long, env = env::NATS_CERT, value_name = "FILE")]
    pub nats_cert: Option<PathBuf>,
    #[arg(long, env = env::NATS_KEY, value_name = "FILE")]
    pub nats_key: Option<PathBuf>,
}

impl SecureLinkArgs {
    /// Flags (and env) over the YAML sections, field by field.
    fn apply(self, config: &mut ServeConfig) {
        fn set<T>(slot: &mut Option<T>, flag: Option<T>) {
            if flag.is_some() {
                *slot = flag;
            }
        }
        let etcd = &mut config.discovery.etcd.auth;
        set(&mut etcd.user, self.etcd_user);
        set(&mut etcd.password_file, self.etcd_password_file);
        set(&mut etcd.ca, self.etcd_ca);
        set(&mut etcd.cert, self.etcd_cert);
        set(&mut etcd.key, self.etcd_key);
        let nats = &mut config.events.nats.auth;
        set(&mut nats.token_file, self.nats_token_file);
        set(&mut nats.user, self.nats_user);
        set(&mut nats.password_file, self.nats_password_file);
        set(&mut nats.creds_file, self.nats_creds);
        set(&mut nats.nkey_seed_file, self.nats_nkey_file);
        set(&mut nats.tls.ca, self.nats_ca);
        set(&mut nats.tls.cert, self.nats_cert);
        set(&mut nats.tls.key, self.nats_key);
    }
}
