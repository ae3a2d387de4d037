//! `--record-decisions FILE`: decision inputs and outputs as JSONL ([`DecisionRecord`]), the
//! trace `switchyard plugin replay` reads. Writing happens on a dedicated thread behind a
//! bounded channel: the request path never touches the file, and when the writer falls behind
//! records are dropped (and counted) rather than slowing requests down.

use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use switchyard_plugin_host::{
    Candidate, DecisionInput, DecisionOutput, DecisionRecord, Observation, PluginKind, Request,
    Topology, DECISION_RECORD_VERSION,
};
use switchyard_runtime::clock::now_ns;

const QUEUE: usize = 16 * 1024;

/// Cheap to clone: every clone feeds the same writer thread (shadow runs take one along).
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: SyncSender<DecisionRecord>,
    pub dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// Creates (truncates) `path` and starts the writer thread.
    pub fn open(path: &str) -> std::io::Result<Self> {
        let file = std::fs::File::create(path)?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("decision-recorder".into())
            .spawn(move || write_loop(rx, BufWriter::new(file)))?;
        Ok(Self {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    fn send(&self, record: DecisionRecord) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(record) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn topology(&self, topology: &Topology) {
        self.send(DecisionRecord {
            v: DECISION_RECORD_VERSION,
            at_ns: now_ns(),
            request_id: None,
            plugin: None,
            shadow: false,
            input: DecisionInput::Topology {
                topology: topology.clone(),
            },
            output: None,
        });
    }

    /// One routing decision by `plugin` (a plugin name or `native:<policy>`).
    pub fn decision(
        &self,
        request_id: &str,
        plugin: &str,
        kind: PluginKind,
        request: &Request,
        candidates: &[Candidate],
        output: DecisionOutput,
    ) {
        self.send(routing_record(
            request_id, plugin, kind, request, candidates, output, false,
        ));
    }

    /// One shadow plugin's decision on the candidates the active chain saw (marked
    /// `"shadow": true`: it was not used for routing).
    pub fn shadow_decision(
        &self,
        request_id: &str,
        plugin: &str,
        kind: PluginKind,
        request: &Request,
        candidates: &[Candidate],
        output: DecisionOutput,
    ) {
        self.send(routing_record(
            request_id, plugin, kind, request, candidates, output, true,
        ));
    }
}

fn routing_record(
    request_id: &str,
    plugin: &str,
    kind: PluginKind,
    request: &Request,
    candidates: &[Candidate],
    output: DecisionOutput,
    shadow: bool,
) -> DecisionRecord {
    let (request, candidates) = (*request, candidates.to_vec());
    let input = match kind {
        PluginKind::Filter => DecisionInput::Filter {
            request,
            candidates,
        },
        PluginKind::Scorer => DecisionInput::Scorer {
            request,
            candidates,
        },
        _ => DecisionInput::Picker {
            request,
            candidates,
        },
    };
    DecisionRecord {
        v: DECISION_RECORD_VERSION,
        at_ns: now_ns(),
        request_id: Some(request_id.to_owned()),
        plugin: Some(plugin.to_owned()),
        shadow,
        input,
        output: Some(output),
    }
}

impl Recorder {
    /// One health-policy decision: the observations it was given and its verdicts (or error).
    pub fn health(&self, plugin: &str, observations: &[Observation], output: DecisionOutput) {
        self.send(DecisionRecord {
            v: DECISION_RECORD_VERSION,
            at_ns: now_ns(),
            request_id: None,
            plugin: Some(plugin.to_owned()),
            shadow: false,
            input: DecisionInput::HealthPolicy {
                observations: observations.to_vec(),
            },
            output: Some(output),
        });
    }
}

fn write_loop(rx: Receiver<DecisionRecord>, mut out: BufWriter<std::fs::File>) {
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(record) = next {
            if serde_json::to_writer(&mut out, &record).is_err() || out.write_all(b"\n").is_err() {
                tracing::error!("cannot write the decision trace; recording stops");
                return;
            }
            next = rx.try_recv().ok();
        }
        if out.flush().is_err() {
            tracing::error!("cannot flush the decision trace; recording stops");
            return;
        }
    }
}
