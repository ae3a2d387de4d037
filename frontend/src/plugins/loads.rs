//! The state of each plugin's latest admin upload: a `PUT /admin/plugins/{name}` answers 202
//! at once and compiles in the background (seconds for Python and JS components without the
//! compile cache); `GET /admin/plugins/{name}/load` reports how that went.

use std::collections::BTreeMap;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

/// Upload states kept at most; the oldest finished ones are forgotten first (names are
/// chosen by admins, but a script looping over names must not grow this without bound).
const MAX_TRACKED: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadState {
    Loading,
    Loaded,
    Failed,
}

#[derive(Debug, Clone)]
struct Load {
    sha256: String,
    state: LoadState,
    error: Option<String>,
    started: Instant,
    finished: Option<Instant>,
}

/// What `GET /admin/plugins/{name}/load` returns.
#[derive(Debug, Serialize)]
pub struct LoadView<'a> {
    pub name: &'a str,
    pub sha256: String,
    pub state: LoadState,
    /// Since the upload started, until it finished.
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub struct LoadLog {
    loads: Mutex<BTreeMap<String, Load>>,
}

impl LoadLog {
    /// Records that `name` started loading the component `sha256` (replacing the state of
    /// an earlier upload of that name).
    pub fn started(&self, name: &str, sha256: &str) {
        let mut loads = self.loads.lock();
        if loads.len() >= MAX_TRACKED && !loads.contains_key(name) {
            let oldest = loads
                .iter()
                .filter(|(_, l)| l.finished.is_some())
                .min_by_key(|(_, l)| l.started)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                loads.remove(&oldest);
            }
        }
        loads.insert(
            name.to_owned(),
            Load {
                sha256: sha256.to_owned(),
                state: LoadState::Loading,
                error: None,
                started: Instant::now(),
                finished: None,
            },
        );
    }

    /// Records how the upload of `sha256` to `name` ended. A later upload of the same name
    /// has replaced the record if the sha256 differs; its own outcome will be recorded.
    pub fn finished(&self, name: &str, sha256: &str, result: Result<(), String>) {
        let mut loads = self.loads.lock();
        if let Some(load) = loads.get_mut(name).filter(|l| l.sha256 == sha256) {
            load.finished = Some(Instant::now());
            match result {
                Ok(()) => load.state = LoadState::Loaded,
                Err(e) => {
                    load.state = LoadState::Failed;
                    load.error = Some(e);
                }
            }
        }
    }

    pub fn view<'a>(&self, name: &'a str) -> Option<LoadView<'a>> {
        let loads = self.loads.lock();
        let load = loads.get(name)?;
        let end = load.finished.unwrap_or_else(Instant::now);
        Some(LoadView {
            name,
            sha256: load.sha256.clone(),
            state: load.state,
            elapsed_ms: u64::try_from(end.duration_since(load.started).as_millis())
                .unwrap_or(u64::MAX),
            error: load.error.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_goes_from_loading_to_its_outcome() {
        let log = LoadLog::default();
        assert!(log.view("a").is_none());
        log.started("a", "s1");
        assert_eq!(log.view("a").map(|v| v.state), Some(LoadState::Loading));
        log.finished("a", "s1", Err("bad component".into()));
        let view = log.view("a");
        assert_eq!(view.as_ref().map(|v| v.state), Some(LoadState::Failed));
        assert_eq!(view.and_then(|v| v.error), Some("bad component".to_owned()));
    }

    #[test]
    fn an_older_uploads_outcome_does_not_overwrite_a_newer_upload() {
        let log = LoadLog::default();
        log.started("a", "s1");
        log.started("a", "s2");
        log.finished("a", "s1", Ok(()));
        let view = log.view("a");
        assert_eq!(view.as_ref().map(|v| v.sha256.as_str()), Some("s2"));
        assert_eq!(view.map(|v| v.state), Some(LoadState::Loading));
    }

    #[test]
    fn the_log_forgets_finished_uploads_beyond_its_bound() {
        let log = LoadLog::default();
        for i in 0..MAX_TRACKED {
            log.started(&format!("p{i}"), "s");
            log.finished(&format!("p{i}"), "s", Ok(()));
        }
        log.started("new", "s");
        assert!(log.view("new").is_some());
        assert!(log.view("p0").is_none(), "the oldest finished one went");
        assert_eq!(log.loads.lock().len(), MAX_TRACKED);
    }
}
