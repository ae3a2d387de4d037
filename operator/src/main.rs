//! `switchyard-operator`: `run` reconciles WorkerPools and RouterPlugins; `crdgen` prints the
//! CRDs the Helm chart ships.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchyard_k8s::WatchScope;
use switchyard_operator::controller;
use switchyard_operator::leader::{LeaderElector, LeaseConfig};
use switchyard_operator::metrics::Metrics;
use switchyard_operator::server::{self, Readiness};
use switchyard_operator::Context;

#[derive(Parser)]
#[command(
    name = "switchyard-operator",
    version,
    about = "Reconciles Switchyard WorkerPools and RouterPlugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as multi-document YAML.
    Crdgen,
    /// Internal: validate the component on stdin under a memory bound and print the plugin
    /// worlds it implements as JSON (`run` starts this per validation).
    #[command(hide = true)]
    ValidateComponent {
        #[arg(long, default_value_t = switchyard_operator::bounded_validator::DEFAULT_MEMORY_MIB)]
        memory_mib: u64,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Reconcile only these namespaces, comma-separated (a Role in each suffices).
    /// Default: the pod's namespace.
    #[arg(
        long = "namespaces",
        visible_alias = "namespace",
        env = "SWITCHYARD_WATCH_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS[,NS…]"
    )]
    namespaces: Vec<String>,
    /// Reconcile every namespace (needs the cluster-wide RBAC).
    #[arg(long, env = "SWITCHYARD_ALL_NAMESPACES", conflicts_with = "namespaces")]
    all_namespaces: bool,
    /// `MODEL=NAMESPACE`: the namespace that owns a model whatever the claim order (repeat
    /// or comma-separate); pools of it elsewhere get `Conflict=True`. Must match the
    /// frontend's `kubernetes.model_owners` (the chart sets both from `modelOwners`).
    #[arg(long = "model-owner", env = "SWITCHYARD_MODEL_OWNERS", value_delimiter = ',', value_parser = parse_owner, value_name = "MODEL=NAMESPACE")]
    model_owners: Vec<(String, String)>,
    /// Wall-time bound of one component validation (a child process, killed at the bound).
    #[arg(
        long,
        env = "SWITCHYARD_VALIDATE_TIMEOUT_SECONDS",
        default_value_t = 60
    )]
    validate_timeout_seconds: u64,
    /// Memory (data segment) bound of one component validation, in MiB.
    #[arg(long, env = "SWITCHYARD_VALIDATE_MEMORY_MIB", default_value_t = switchyard_operator::bounded_validator::DEFAULT_MEMORY_MIB)]
    validate_memory_mib: u64,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "SWITCHYARD_OPERATOR_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    listen: SocketAddr,
    /// Elect a leader through a Lease so several replicas are safe.
    #[arg(long, env = "SWITCHYARD_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Name of the Lease.
    #[arg(
        long,
        env = "SWITCHYARD_LEASE_NAME",
        default_value = "switchyard-operator"
    )]
    lease_name: String,
    /// Namespace of the Lease (and the default watch namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pod_namespace: String,
    /// Identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "switchyard-operator")]
    pod_name: String,
    /// Directory of worker API keys named `<namespace>.<frontendKey>` (the frontend's mounted
    /// key Secret): sent with LoraAdapter loads to pools with `apiKey`.
    #[arg(long, env = "SWITCHYARD_WORKER_API_KEYS_DIR", value_name = "DIR")]
    worker_api_keys_dir: Option<std::path::PathBuf>,
}

/// `--all-namespaces`, else the listed namespaces, else the pod's own.
fn scope(args: &RunArgs) -> WatchScope {
    if args.all_namespaces {
        return WatchScope::Cluster;
    }
    match WatchScope::from_names(&args.namespaces) {
        // Never widen to every namespace by accident: no list means the pod's own.
        WatchScope::Cluster => WatchScope::Namespaces(vec![args.pod_namespace.clone()]),
        listed => listed,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen => {
            print!("{}", switchyard_k8s::crd::crds_yaml()?);
            Ok(())
        }
        Command::Run(args) => run(args).await,
        Command::ValidateComponent { memory_mib } => {
            let answer = switchyard_operator::bounded_validator::run_child(
                memory_mib,
                switchyard_k8s::source::MAX_COMPONENT_BYTES,
            );
            println!("{}", serde_json::to_string(&answer)?);
            Ok(())
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let scope = scope(&args);
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(Readiness::default());
    let bounded = switchyard_operator::bounded_validator::ChildProcessValidator::this_binary(
        std::time::Duration::from_secs(args.validate_timeout_seconds.max(1)),
        args.validate_memory_mib,
    )
    .context("locating the operator binary for component validation")?;
    let mut ctx = Context::new(client.clone(), metrics.clone(), Arc::new(bounded))?;
    ctx.worker_defaults = switchyard_operator::pod_extras::WorkerDefaults::from_env();
    ctx.worker_keys_dir = args.worker_api_keys_dir.clone();
    ctx.pool_claims = switchyard_operator::ownership::PoolClaims::new(
        args.model_owners.iter().cloned().collect(),
    );
    let ctx = Arc::new(ctx);
    let server = tokio::spawn(server::serve(args.listen, metrics.clone(), ready.clone()));

    let elector = match args.leader_elect {
        true => {
            let config = LeaseConfig {
                name: args.lease_name.clone(),
                namespace: args.pod_namespace.clone(),
                identity: args.pod_name.clone(),
                ..LeaseConfig::default()
            };
            config.validate().map_err(anyhow::Error::msg)?;
            Some(LeaderElector::new(client, config))
        }
        false => None,
    };
    tracing::info!(?scope, leader_elect = args.leader_elect, "starting");
    let result = match &elector {
        Some(elector) => {
            // A standby is ready: it serves probes and waits for the lease (a never-ready
            // standby would stall rolling updates of a two-replica Deployment).
            ready.set(true);
            let since = tokio::select! {
                since = elector.acquire() => since,
                () = shutdown_signal() => {
                    server.abort();
                    return Ok(());
                }
            };
            ready.set(false);
            metrics.leader.set(1);
            tracing::info!(identity = %args.pod_name, "acquired leadership");
            tokio::select! {
                _ = controller::run(ctx, scope, ready.clone()) => Ok(()),
                lost = elector.keep_renewing(since) => Err(anyhow::Error::new(lost)),
            }
        }
        None => {
            controller::run(ctx, scope, ready.clone()).await;
            Ok(())
        }
    };
    if let Some(elector) = &elector {
        metrics.leader.set(0);
        if let Err(e) = elector.release().await {
            tracing::warn!(error = %e, "releasing the lease failed; a standby takes over after it expires");
        }
    }
    server.abort();
    result
}

/// SIGTERM (the kubelet stopping the pod) or Ctrl-C; the controllers watch for these
/// themselves, this is for a standby still waiting for the lease.
async fn shutdown_signal() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `MODEL=NAMESPACE` (split at the last `=`: namespaces never contain one).
fn parse_owner(s: &str) -> Result<(String, String), String> {
    match s.trim().rsplit_once('=') {
        Some((model, ns)) if !model.is_empty() && !ns.is_empty() => {
            Ok((model.to_string(), ns.to_string()))
        }
        _ => Err(format!("expected MODEL=NAMESPACE, got {s:?}")),
    }
}
