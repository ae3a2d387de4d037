//! Component validation in a child process with a wall-time and a memory bound.
//!
//! Compiling a component is the one thing the operator does with attacker-sized input whose
//! cost is not linear in its size: a "compile bomb" can take minutes and gigabytes inside
//! Cranelift, and a thread cannot be stopped. So the operator runs
//! `switchyard-operator validate-component` (this same binary) per validation: the child caps
//! its own data segment (`RLIMIT_DATA`, which counts heap and anonymous mappings but not
//! wasmtime's `PROT_NONE` reservations) and the parent kills it when the wall-time bound
//! passes. Either failure is `Validated=False` on the plugin, never a crash of the operator.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_k8s::PluginKind;

use crate::validator::{ComponentValidator, PluginHostValidator, ValidationError};

/// Default wall-time bound of one validation (Python components compile in ~8 s here).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default data-segment bound of the validation child.
pub const DEFAULT_MEMORY_MIB: u64 = 2048;

/// What the child prints on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildAnswer {
    Kinds(Vec<PluginKind>),
    Invalid(String),
    Unavailable(String),
}

/// Runs `program args… ` with the component on stdin, under `timeout`.
pub struct ChildProcessValidator {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub timeout: Duration,
}

impl ChildProcessValidator {
    /// This binary's `validate-component --memory-mib N`.
    pub fn this_binary(timeout: Duration, memory_mib: u64) -> std::io::Result<Self> {
        Ok(Self {
            program: std::env::current_exe()?,
            args: vec![
                "validate-component".into(),
                "--memory-mib".into(),
                memory_mib.to_string(),
            ],
            timeout,
        })
    }
}

impl ComponentValidator for ChildProcessValidator {
    fn detect_kinds(&self, bytes: &[u8]) -> Result<Vec<PluginKind>, ValidationError> {
        let unavailable = |e: std::io::Error| {
            ValidationError::Unavailable(format!("starting the validation process: {e}"))
        };
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(unavailable)?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        // The watchdog kills the child at the deadline unless told the child is done.
        let (done, deadline) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (fired, timeout) = (Arc::clone(&fired), self.timeout);
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = deadline.recv_timeout(timeout) {
                    fired.store(true, Ordering::Release);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                }
            })
        };
        // A child that dies early closes its stdin: a write error then is not ours to report.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(bytes);
        }
        let mut out = Vec::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.by_ref().take(1 << 20).read_to_end(&mut out);
        }
        let status = child.wait();
        let _ = done.send(());
        let _ = watchdog.join();
        if fired.load(Ordering::Acquire) {
            return Err(ValidationError::Invalid(format!(
                "compiling the component took longer than {} s",
                self.timeout.as_secs_f64()
            )));
        }
        let answer = serde_json::from_slice::<ChildAnswer>(&out).ok();
        match (status, answer) {
            (Ok(s), Some(answer)) if s.success() => match answer {
                ChildAnswer::Kinds(kinds) => Ok(kinds),
                ChildAnswer::Invalid(m) => Err(ValidationError::Invalid(m)),
                ChildAnswer::Unavailable(m) => Err(ValidationError::Unavailable(m)),
            },
            _ => Err(ValidationError::Invalid(
                "compiling the component exceeded the validation memory bound or crashed"
                    .to_string(),
            )),
        }
    }
}

/// The child's side: reads the component from stdin (at most `max_bytes`), caps its data
/// segment, validates the component in-process and returns the answer to print.
pub fn run_child(memory_mib: u64, max_bytes: usize) -> ChildAnswer {
    // Read first (bounded by `max_bytes`): the bound is for what compiling costs.
    let mut component = Vec::new();
    let read = std::io::stdin()
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut component);
    if read.is_err() || component.len() > max_bytes {
        return ChildAnswer::Invalid("the component could not be read".to_string());
    }
    let bytes = memory_mib.saturating_mul(1 << 20);
    if let Err(e) =
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_DATA, bytes, bytes)
    {
        return ChildAnswer::Unavailable(format!("setting the memory bound: {e}"));
    }
    match PluginHostValidator.detect_kinds(&component) {
        Ok(kinds) => ChildAnswer::Kinds(kinds),
        Err(ValidationError::Invalid(m)) => ChildAnswer::Invalid(m),
        Err(ValidationError::Unavailable(m)) => ChildAnswer::Unavailable(m),
    }
}
