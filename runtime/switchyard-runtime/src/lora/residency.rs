//! Where adapters are resident, per instance.
//!
//! Two sources feed it:
//! - the engine's own metric, read with the load scrape: vLLM's `vllm:lora_requests_info`
//!   gauge, whose labels name the adapters of running and waiting requests
//!   (`running_lora_adapters`, `waiting_lora_adapters`, comma-separated) and the adapter slot
//!   count (`max_lora`). Its value is the time of the update and the engine keeps one series
//!   per label set it ever exported, so only the newest series (largest value) counts;
//! - the adapter loads and unloads this frontend made itself, and the requests it routed.
//!
//! The metric names only adapters with requests in the engine, so an adapter that was
//! loaded and then went quiet stays resident here (from its last sighting or load) until
//! this frontend unloads it.

use parking_lot::Mutex;

use crate::engine_load::prom_text;

/// The series vLLM exports for LoRA.
pub const VLLM_LORA_INFO: &str = "vllm:lora_requests_info";

/// An adapter not used for this long, and not in the engine's running or waiting lists, is
/// idle: eviction may unload it. Long enough that a request routed a moment ago is counted
/// as using it before the engine's next report shows it running.
pub const IDLE_NS: u64 = 2_000_000_000;

/// One reading of the engine's LoRA metric.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoraInfo {
    pub running: Vec<String>,
    pub waiting: Vec<String>,
    /// Adapter slots (`max_lora`); `None` when the label is missing or not a number.
    pub max_loras: Option<u32>,
}

impl LoraInfo {
    /// Reads the newest `vllm:lora_requests_info` series from a metrics text; `None` when the
    /// engine exports none (LoRA off, or another engine). Malformed lines are skipped.
    pub fn read(text: &str) -> Option<Self> {
        let mut newest: Option<(f64, Self)> = None;
        prom_text::parse(text, |s| {
            if s.name != VLLM_LORA_INFO || !s.value.is_finite() {
                return;
            }
            if newest.as_ref().is_some_and(|(at, _)| *at > s.value) {
                return;
            }
            let list = |key: &str| names(&s.label(key).unwrap_or_default());
            let slots = s.label("max_lora").or_else(|| s.label("max_loras"));
            let info = Self {
                running: list("running_lora_adapters"),
                waiting: list("waiting_lora_adapters"),
                max_loras: slots.and_then(|v| v.trim().parse().ok()),
            };
            newest = Some((s.value, info));
        });
        newest.map(|(_, info)| info)
    }
}

/// `"a, b,,c"` → `["a", "b", "c"]`. Some versions write `name:count`; the count is dropped.
fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| match n.rsplit_once(':') {
            Some((name, count)) if count.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => n,
        })
        .map(str::to_owned)
        .collect()
}

/// One instance's adapters.
#[derive(Debug, Default)]
pub struct Residency {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Adapters known loaded, with when each was last used (clock ns).
    loaded: Vec<(String, u64)>,
    /// The engine's running and waiting adapters at its last report.
    active: Vec<String>,
    max_loras: Option<u32>,
}

impl State {
    /// Marks `name` used at `now`. With the engine's slot count known, the set is kept to
    /// that many, least recently used out, as the engine's own slots are (vLLM swaps
    /// adapters in and out of its GPU slots LRU).
    fn touch(&mut self, name: &str, now: u64) {
        match self.loaded.iter_mut().find(|(n, _)| n == name) {
            Some((_, at)) => *at = (*at).max(now),
            None => self.loaded.push((name.to_owned(), now)),
        }
        let Some(slots) = self.max_loras.map(|s| s.max(1) as usize) else {
            return;
        };
        while self.loaded.len() > slots {
            let oldest = self
                .loaded
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| n != name)
                .min_by_key(|(_, (_, at))| *at)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => self.loaded.remove(i),
                None => break,
            };
        }
    }
}

impl Residency {
    /// Applies an engine report: running adapters are loaded (the engine is using them).
    pub fn observe(&self, info: &LoraInfo, now: u64) {
        let mut s = self.state.lock();
        if info.max_loras.is_some() {
            s.max_loras = info.max_loras;
        }
        for name in &info.running {
            s.touch(name, now);
        }
        s.active = info.running.iter().chain(&info.waiting).cloned().collect();
    }

    /// Applies the engine's own list of loaded adapters (`/v1/models`), read from a request sent
    /// at `listed_at`: listed adapters are resident (never used here yet, they are the first
    /// idle ones), and unlisted ones were unloaded by someone else — unless this frontend used
    /// or loaded them after the list was asked for, which the list cannot show yet.
    pub fn sync_loaded(&self, listed: &[String], listed_at: u64) {
        let mut s = self.state.lock();
        s.loaded
            .retain(|(n, at)| *at >= listed_at || listed.iter().any(|l| l == n));
        for name in listed {
            if !s.loaded.iter().any(|(n, _)| n == name) {
                s.loaded.push((name.clone(), 0));
            }
        }
    }

    pub fn is_resident(&self, name: &str) -> bool {
        self.state.lock().loaded.iter().any(|(n, _)| n == name)
    }

    /// A request was routed to `name` here (or a load of it succeeded).
    pub fn touch(&self, name: &str, now: u64) {
        self.state.lock().touch(name, now);
    }

    pub fn unloaded(&self, name: &str) {
        self.state.lock().loaded.retain(|(n, _)| n != name);
    }

    /// Slots from the engine's report, else `configured`.
    pub fn max_loras(&self, configured: Option<u32>) -> Option<u32> {
        self.state.lock().max_loras.or(configured)
    }

    pub fn loaded_count(&self) -> usize {
        self.state.lock().loaded.len()
    }

    /// The least recently used idle adapter that `evictable` allows, if any: the one to
    /// unload for a free slot.
    pub fn eviction_candidate(&self, now: u64, evictable: impl Fn(&str) -> bool) -> Option<String> {
        let s = self.state.lock();
        s.loaded
            .iter()
            .filter(|(n, at)| now.saturating_sub(*at) >= IDLE_NS && !s.active.contains(n))
            .filter(|(n, _)| evictable(n))
            .min_by_key(|(_, at)| *at)
            .map(|(n, _)| n.clone())
    }

    /// The resident adapters, sorted (admin view).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .state
            .lock()
            .loaded
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a vLLM V1 server with `--enable-lora --max-loras 4` exports after serving two
    /// adapters: the gauge keeps the older label set too, with an older timestamp.
    const VLLM_TEXT: &str = r#"# HELP vllm:lora_requests_info Running stats on lora requests.
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="4",running_lora_adapters="",waiting_lora_adapters=""} 1.7331e9
vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql-lora,chat-lora",waiting_lora_adapters="tool-lora"} 1.7332e9
vllm:num_requests_running{engine="0",model_name="llama"} 2.0
"#;

    #[test]
    fn the_newest_series_wins_and_lists_split_on_commas() {
        let info = LoraInfo::read(VLLM_TEXT).unwrap();
        assert_eq!(info.running, ["sql-lora", "chat-lora"]);
        assert_eq!(info.waiting, ["tool-lora"]);
        assert_eq!(info.max_loras, Some(4));
    }

    #[test]
    fn no_series_is_none_and_odd_labels_are_tolerated() {
        assert_eq!(LoraInfo::read("vllm:num_requests_running 1\n"), None);
        let odd =
            "vllm:lora_requests_info{max_lora=\"x\",running_lora_adapters=\" a:3 , ,b \"} 5\n";
        let info = LoraInfo::read(odd).unwrap();
        assert_eq!(info.running, ["a", "b"]);
        assert!(info.waiting.is_empty());
        assert_eq!(info.max_loras, None);
    }

    #[test]
    fn with_the_slot_count_known_the_least_recently_used_falls_out() {
        let r = Residency::default();
        let two_slots = LoraInfo {
            max_loras: Some(2),
            ..LoraInfo::default()
        };
        r.observe(&two_slots, 0);
        r.touch("a", 1);
        r.touch("b", 2);
        r.touch("a", 3);
        r.touch("c", 4);
        assert_eq!(r.names(), ["a", "c"], "b was least recently used");
    }

    #[test]
    fn running_adapters_become_resident_and_only_idle_ones_are_evicted_lru_first() {
        let r = Residency::default();
        r.touch("old", 1);
        r.touch("newer", 2);
        let info = LoraInfo::read(VLLM_TEXT).unwrap();
        r.observe(&info, 10);
        assert!(r.is_resident("sql-lora") && r.is_resident("old"));
        assert!(!r.is_resident("tool-lora"), "waiting is not loaded");
        assert_eq!(r.max_loras(Some(8)), Some(4), "the engine's figure wins");
        let later = 10 + IDLE_NS;
        assert_eq!(
            r.eviction_candidate(later, |_| true).as_deref(),
            Some("old")
        );
        // An adapter the caller may not unload (loaded by the engine's own flags) is skipped.
        assert_eq!(
            r.eviction_candidate(later, |n| n != "old").as_deref(),
            Some("newer")
        );
        r.unloaded("old");
        assert_eq!(
            r.eviction_candidate(later, |_| true).as_deref(),
            Some("newer")
        );
        r.touch("newer", later);
        // sql-lora and chat-lora are running: never evicted while the engine uses them.
        assert_eq!(r.eviction_candidate(later, |_| true), None);
        assert_eq!(r.loaded_count(), 3);
    }
}
