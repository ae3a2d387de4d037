//! The frontend side: list the instance prefix, then watch it from the listed revision.
//!
//! Listing and watching from `revision + 1` leaves no window in which a change can be missed.
//! Any failure (etcd gone, watch cancelled by compaction, stream ended) ends the session: the
//! backend reports `State(Disconnected)` once and then *keeps quiet* — it never sends a
//! `Remove` or an empty `Snapshot` because etcd is unreachable, so the frontend keeps routing
//! to its last known set (fail-static). It retries with capped backoff, and a successful
//! re-list sends a full `Snapshot` followed by `State(Connected)`, which also covers anything
//! that changed during the outage.

use std::collections::HashMap;

use etcd_client::{EventType, GetOptions, KeyValue, WatchOptions};
use switchyard_runtime::lora::AdapterSpec;
use switchyard_runtime::spec_check::{self, Reason, Rejection};
use switchyard_runtime::{DiscoveryEvent, DiscoveryState, InstanceSpec};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::adapters::AdapterKeys;
use crate::backoff::Backoff;
use crate::keys::id_from_key;
use crate::{Error, EtcdConfig, Result};

/// Runs etcd discovery until `tx`'s receiver is dropped.
pub fn spawn_discovery(cfg: EtcdConfig, tx: UnboundedSender<DiscoveryEvent>) -> JoinHandle<()> {
    tokio::spawn(run(cfg, tx))
}

/// The discovery loop (what [`spawn_discovery`] spawns).
pub async fn run(cfg: EtcdConfig, tx: UnboundedSender<DiscoveryEvent>) {
    let mut backoff = Backoff::default();
    // None until the first attempt: the first failure must still be reported.
    let mut connected: Option<bool> = None;
    // The adapter set last reported: sent again only when it changes (none → nothing sent).
    let mut adapters_sent: Vec<AdapterSpec> = Vec::new();
    loop {
        let ended = tokio::select! {
            r = session(&cfg, &tx, &mut connected, &mut backoff, &mut adapters_sent) => r,
            _ = tx.closed() => return,
        };
        match ended {
            // The receiver is gone: nobody to report to.
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "etcd discovery lost; serving the last known instances");
                if connected != Some(false) {
                    connected = Some(false);
                    if tx
                        .send(DiscoveryEvent::State(DiscoveryState::Disconnected))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = tx.closed() => return,
        }
    }
}

/// One list + watch. Returns `Ok` only when the receiver is gone.
async fn session(
    cfg: &EtcdConfig,
    tx: &UnboundedSender<DiscoveryEvent>,
    connected: &mut Option<bool>,
    backoff: &mut Backoff,
    adapters_sent: &mut Vec<AdapterSpec>,
) -> Result<()> {
    let mut client = cfg.connect().await?;
    let listed = cfg
        .timed(
            "list",
            client.get(cfg.prefix.as_str(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
    let revision = listed.header().map_or(0, |h| h.revision());
    // key → id, so a delete (which carries only the key) can name the instance.
    let mut ids: HashMap<Vec<u8>, String> = HashMap::new();
    let mut specs: Vec<InstanceSpec> = Vec::with_capacity(listed.kvs().len());
    let mut adapters = AdapterKeys::default();
    for kv in listed.kvs() {
        if AdapterKeys::is_adapter_key(&cfg.prefix, kv.key()) {
            if let Err(reason) = adapters.put(&cfg.prefix, kv) {
                if tx.send(DiscoveryEvent::Rejected(reason)).is_err() {
                    return Ok(());
                }
            }
            continue;
        }
        match parse(cfg, kv) {
            Ok(spec) => {
                ids.insert(kv.key().to_vec(), spec.id.clone());
                specs.push(spec);
            }
            Err(reason) => {
                if tx.send(DiscoveryEvent::Rejected(reason)).is_err() {
                    return Ok(());
                }
            }
        }
    }
    let watch = client.watch(
        cfg.prefix.as_str(),
        Some(
            WatchOptions::new()
                .with_prefix()
                .with_start_revision(revision + 1),
        ),
    );
    let mut stream = cfg.timed("watch", watch).await?;
    // Adapters first: once the snapshot makes the frontend ready, its adapters resolve too.
    if !report_adapters(tx, &adapters, adapters_sent)
        || tx.send(DiscoveryEvent::Snapshot(specs)).is_err()
        || tx
            .send(DiscoveryEvent::State(DiscoveryState::Connected))
            .is_err()
    {
        return Ok(());
    }
    *connected = Some(true);
    backoff.reset();
    tracing::info!(revision, instances = ids.len(), "etcd discovery synced");
    loop {
        let Some(resp) = stream.message().await? else {
            return Err(Error::Config("etcd closed the watch stream".into()));
        };
        if resp.canceled() {
            // Compaction overtook us (or the server cancelled): re-list from scratch.
            return Err(Error::Config(format!(
                "watch cancelled (compact revision {}): {}",
                resp.compact_revision(),
                resp.cancel_reason()
            )));
        }
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            if AdapterKeys::is_adapter_key(&cfg.prefix, kv.key()) {
                let rejected = match ev.event_type() {
                    EventType::Put => adapters.put(&cfg.prefix, kv).err(),
                    EventType::Delete => {
                        adapters.delete(kv.key());
                        None
                    }
                };
                let rejected_sent =
                    rejected.is_none_or(|r| tx.send(DiscoveryEvent::Rejected(r)).is_ok());
                if !rejected_sent || !report_adapters(tx, &adapters, adapters_sent) {
                    return Ok(());
                }
                continue;
            }
            let event = match ev.event_type() {
                EventType::Put => match parse(cfg, kv) {
                    Ok(spec) => {
                        // A key re-registered under another id: the old id is gone.
                        if let Some(old) = ids.insert(kv.key().to_vec(), spec.id.clone()) {
                            if old != spec.id
                                && tx.send(DiscoveryEvent::Remove { id: old }).is_err()
                            {
                                return Ok(());
                            }
                        }
                        DiscoveryEvent::Upsert(Box::new(spec))
                    }
                    Err(reason) => {
                        if tx.send(DiscoveryEvent::Rejected(reason)).is_err() {
                            return Ok(());
                        }
                        // What this key registered before no longer stands.
                        match ids.remove(kv.key()) {
                            Some(id) => DiscoveryEvent::Remove { id },
                            None => continue,
                        }
                    }
                },
                EventType::Delete => {
                    let id = ids.remove(kv.key()).or_else(|| {
                        std::str::from_utf8(kv.key())
                            .ok()
                            .and_then(|k| id_from_key(&cfg.prefix, k))
                    });
                    match id {
                        Some(id) => DiscoveryEvent::Remove { id },
                        None => continue,
                    }
                }
            };
            if tx.send(event).is_err() {
                return Ok(());
            }
        }
    }
}

/// Sends the adapter set if it differs from what was last sent; false when the receiver is
/// gone.
fn report_adapters(
    tx: &UnboundedSender<DiscoveryEvent>,
    adapters: &AdapterKeys,
    sent: &mut Vec<AdapterSpec>,
) -> bool {
    let now = adapters.list();
    if now == *sent {
        return true;
    }
    sent.clone_from(&now);
    tx.send(DiscoveryEvent::Adapters(now)).is_ok()
}

/// A key's spec, or why it is unusable (logged here, with its key): not JSON for an
/// `InstanceSpec`, or a spec that fails [`spec_check::check`]. One bad registration must not
/// stop discovery of the others; the registry checks again, whatever the source.
fn parse(cfg: &EtcdConfig, kv: &KeyValue) -> std::result::Result<InstanceSpec, Reason> {
    let checked = serde_json::from_slice::<InstanceSpec>(kv.value())
        .map_err(|e| Rejection::new(Reason::Parse, e.to_string()))
        .and_then(|spec| spec_check::check(&spec).map(|()| spec));
    checked.map_err(|rejection| {
        // The key is the registrant's choice: show it escaped and bounded.
        let key = String::from_utf8_lossy(&kv.key()[..kv.key().len().min(256)]).into_owned();
        tracing::warn!(key = ?key, prefix = %cfg.prefix, reason = rejection.reason.as_str(), error = %rejection.message, "ignoring invalid instance registration");
        rejection.reason
    })
}
