//! Reloads the tenants file (and the key files it names) when they change. Polling the
//! files' modification time and size once a second is what the plugin files use too: it
//! works on every filesystem, including Kubernetes' symlink-swapped Secret mounts.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Tenants;
use crate::plugins::FileStamp;

const PERIOD: Duration = Duration::from_secs(1);

/// Starts the watcher when the list comes from a file.
pub fn spawn(tenants: Arc<Tenants>) -> Option<JoinHandle<()>> {
    tenants.file()?;
    Some(tokio::spawn(async move {
        let mut seen = stamps(&tenants);
        let mut tick = tokio::time::interval(PERIOD);
        loop {
            tick.tick().await;
            let now = stamps(&tenants);
            if now == seen {
                continue;
            }
            seen = now;
            match tenants.reload() {
                Ok(n) => tracing::info!(tenants = n, "tenants file changed: reloaded"),
                Err(error) => {
                    tracing::warn!(%error, "tenants file changed but is invalid; keeping the running list")
                }
            }
        }
    }))
}

fn stamps(tenants: &Tenants) -> Vec<Option<FileStamp>> {
    let mut paths: Vec<String> = tenants.file().map(str::to_owned).into_iter().collect();
    if let Some(set) = tenants.current() {
        paths.extend(set.key_files().iter().cloned());
    }
    paths.iter().map(|p| FileStamp::of(p)).collect()
}
