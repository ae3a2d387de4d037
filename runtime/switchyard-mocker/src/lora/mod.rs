//! LoRA adapters in the mocker, after vLLM: adapters are registered (at start with
//! `--lora-modules`, or at runtime through the dialect's load endpoint) and served from
//! `--max-loras` GPU slots, least recently used out; a request for a registered adapter that
//! is not in a slot waits `--lora-load-ms` for the swap. A request naming an unregistered
//! adapter is a 404, as vLLM answers an unknown `model`.

pub mod args;
pub mod routes;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use parking_lot::Mutex;

use switchyard_runtime::exposition::Scrape;

use crate::metrics::names;
use crate::state::Shared;

pub use args::LoraArgs;

/// The adapter state of one mocker.
#[derive(Debug, Default)]
pub struct Adapters {
    args: LoraArgs,
    state: Mutex<State>,
    /// Successful loads through the API (`switchyard_mocker_lora_loads_total`).
    pub loads: AtomicU64,
    /// Slot swaps: a request for an adapter that was not in a slot.
    pub swaps: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Registered adapters: `(name, path)`.
    registered: Vec<(String, String)>,
    /// Adapters in GPU slots, most recently used last.
    slots: Vec<String>,
    /// Requests in flight per adapter (vLLM's `running_lora_adapters`).
    running: Vec<(String, u32)>,
}

/// Why a load or unload was refused, in vLLM's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Disabled,
    AlreadyLoaded(String),
    NotFound(String),
    BadPath { name: String, path: String },
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Self::Disabled => "LoRA is not enabled on this server (--max-loras 0)".into(),
            Self::AlreadyLoaded(n) => format!("The lora adapter '{n}' has already been loaded."),
            Self::NotFound(n) => format!("The lora adapter '{n}' cannot be found."),
            Self::BadPath { name, path } => {
                format!("Loading lora {name} failed: No adapter found for {path}")
            }
        }
    }
}

/// Counts a request for an adapter as running until dropped.
#[derive(Debug)]
pub(crate) struct Running {
    shared: Arc<Shared>,
    name: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.lora.finish(&self.name);
    }
}

/// Starts a request for adapter `name` (registered): swaps it into a slot if needed
/// (waiting `--lora-load-ms`) and counts it running until the guard drops.
pub(crate) async fn begin(shared: &Arc<Shared>, name: &str) -> Running {
    shared.lora.begin(name).await;
    Running {
        shared: Arc::clone(shared),
        name: name.to_owned(),
    }
}

/// A streamed body that keeps its request counted as running on its adapter until the
/// stream ends or the client goes away.
pub(crate) fn hold(
    body: UnsyncBoxBody<Bytes, Infallible>,
    running: Option<Running>,
) -> UnsyncBoxBody<Bytes, Infallible> {
    match running {
        None => body,
        Some(running) => body
            .map_frame(move |frame| {
                let _held = &running;
                frame
            })
            .boxed_unsync(),
    }
}

impl Adapters {
    pub fn new(args: &LoraArgs) -> Self {
        let state = State {
            registered: args
                .modules()
                .map(|(n, p)| (n.to_owned(), p.to_owned()))
                .collect(),
            ..State::default()
        };
        Self {
            args: args.clone(),
            state: Mutex::new(state),
            ..Self::default()
        }
    }

    pub fn enabled(&self) -> bool {
        self.args.max_loras > 0
    }

    pub fn is_registered(&self, name: &str) -> bool {
        self.state.lock().registered.iter().any(|(n, _)| n == name)
    }

    /// Registers an adapter after the load time. The path must exist on this machine, as
    /// vLLM reads the adapter from it (a URI is not resolved by the mocker).
    pub async fn load(&self, name: &str, path: &str) -> Result<(), Refusal> {
        if !self.enabled() {
            return Err(Refusal::Disabled);
        }
        if self.is_registered(name) {
            return Err(Refusal::AlreadyLoaded(name.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(self.args.lora_load_ms)).await;
        if !std::path::Path::new(path).exists() {
            return Err(Refusal::BadPath {
                name: name.to_owned(),
                path: path.to_owned(),
            });
        }
        let mut s = self.state.lock();
        if s.registered.iter().any(|(n, _)| n == name) {
            return Err(Refusal::AlreadyLoaded(name.to_owned()));
        }
        s.registered.push((name.to_owned(), path.to_owned()));
        self.loads.fetch_add(1, Relaxed);
        Ok(())
    }

    pub fn unload(&self, name: &str) -> Result<(), Refusal> {
        if !self.enabled() {
            return Err(Refusal::Disabled);
        }
        let mut s = self.state.lock();
        let before = s.registered.len();
        s.registered.retain(|(n, _)| n != name);
        if s.registered.len() == before {
            return Err(Refusal::NotFound(name.to_owned()));
        }
        s.slots.retain(|n| n != name);
        Ok(())
    }

    /// Counts a request for `name` as running, swapping the adapter into a slot first if
    /// it is not in one (waiting `--lora-load-ms`). Pair with [`Adapters::finish`].
    pub async fn begin(&self, name: &str) {
        let swap = {
            let mut s = self.state.lock();
            match s.running.iter_mut().find(|(n, _)| n == name) {
                Some((_, count)) => *count += 1,
                None => s.running.push((name.to_owned(), 1)),
            }
            let resident = s.slots.iter().any(|n| n == name);
            s.slots.retain(|n| n != name);
            s.slots.push(name.to_owned());
            if s.slots.len() > self.args.max_loras {
                s.slots.remove(0);
            }
            !resident
        };
        if swap {
            self.swaps.fetch_add(1, Relaxed);
            tokio::time::sleep(Duration::from_millis(self.args.lora_load_ms)).await;
        }
    }

    /// A request for `name` ended.
    pub fn finish(&self, name: &str) {
        let mut s = self.state.lock();
        if let Some(pos) = s.running.iter().position(|(n, _)| n == name) {
            s.running[pos].1 -= 1;
            if s.running[pos].1 == 0 {
                s.running.remove(pos);
            }
        }
    }

    /// Registered adapters `(name, path)`, sorted.
    pub fn registered(&self) -> Vec<(String, String)> {
        let mut v = self.state.lock().registered.clone();
        v.sort();
        v
    }

    /// The mocker's adapter counters and, with `vllm_info`, vLLM's LoRA info gauge (its
    /// value the current time); nothing with LoRA off, as vLLM.
    pub fn collect(&self, vllm_info: bool, s: &mut Scrape) {
        if !self.enabled() {
            return;
        }
        s.family(&names::LORA_LOADS)
            .value(&[], self.loads.load(Relaxed) as f64);
        s.family(&names::LORA_SWAPS)
            .value(&[], self.swaps.load(Relaxed) as f64);
        if !vllm_info {
            return;
        }
        let mut running: Vec<String> = self
            .state
            .lock()
            .running
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        running.sort();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let max_lora = self.args.max_loras.to_string();
        let running = running.join(",");
        s.family(&names::dialect::VLLM_LORA_INFO).value(
            &[
                ("max_lora", &max_lora),
                ("running_lora_adapters", &running),
                ("waiting_lora_adapters", ""),
            ],
            now,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapters(max_loras: usize) -> Adapters {
        Adapters::new(&LoraArgs {
            max_loras,
            lora_load_ms: 200,
            lora_modules: vec!["a=/".into()],
        })
    }

    #[tokio::test(start_paused = true)]
    async fn loads_register_once_and_bad_paths_fail_as_vllm_says() {
        let a = adapters(1);
        assert!(a.load("b", "/").await.is_ok());
        assert_eq!(
            a.load("b", "/").await,
            Err(Refusal::AlreadyLoaded("b".into()))
        );
        let err = a.load("c", "/no/such/adapter").await.unwrap_err();
        assert!(err
            .message()
            .contains("No adapter found for /no/such/adapter"));
        assert_eq!(a.unload("c"), Err(Refusal::NotFound("c".into())));
        assert!(a.unload("b").is_ok() && !a.is_registered("b"));
        assert_eq!(adapters(0).load("b", "/").await, Err(Refusal::Disabled));
    }

    fn render(a: &Adapters) -> String {
        let mut s = Scrape::default();
        a.collect(true, &mut s);
        let text = crate::metrics::encode(s);
        switchyard_runtime::exposition::check(&text).unwrap();
        text
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_swaps_a_cold_adapter_in_and_counts_as_running() {
        let a = adapters(1);
        a.begin("a").await;
        assert_eq!(a.swaps.load(Relaxed), 1, "cold: swapped in");
        let text = render(&a);
        assert!(text.contains("running_lora_adapters=\"a\""), "{text}");
        a.finish("a");
        a.begin("a").await;
        a.finish("a");
        assert_eq!(a.swaps.load(Relaxed), 1, "warm: no swap");
        let text = render(&a);
        assert!(text.contains("running_lora_adapters=\"\""), "{text}");
    }
}
