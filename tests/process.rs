//! Child processes that die with the test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The `switchyard` binary under test.
pub fn switchyard_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHYARD_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/it-<hash> → target/<profile>/switchyard
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    profile_dir.join("switchyard")
}

/// A cargo example of the `switchyard` crate (`target/<profile>/examples/NAME`), built by
/// `cargo build --workspace --bins --tests --examples` (scripts/test.sh).
pub fn example_bin(name: &str) -> PathBuf {
    let bin = switchyard_bin();
    bin.parent()
        .map(|dir| dir.join("examples").join(name))
        .unwrap_or_default()
}

/// A free TCP port on 127.0.0.1 (bound and released; the OS does not reuse it at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A running process, killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub name: String,
    pub port: u16,
    /// The admin listener's port (frontends started by [`frontend`]); 0 otherwise.
    pub admin_port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Proc {
    /// Starts `switchyard <args…>` with `port` substituted for `{port}` in the args.
    pub fn spawn(name: &str, args: &[String], port: u16) -> anyhow::Result<Self> {
        Self::spawn_with_env(name, args, port, &[])
    }

    /// [`Proc::spawn`] with extra environment variables.
    pub fn spawn_with_env(
        name: &str,
        args: &[String],
        port: u16,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::spawn_program(name, &switchyard_bin(), args, port, env)
    }

    /// Starts the program `bin` (a `switchyard` binary or one of its examples) like
    /// [`Proc::spawn_with_env`].
    pub fn spawn_program(
        name: &str,
        bin: &std::path::Path,
        args: &[String],
        port: u16,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        if !bin.exists() {
            bail!(
                "{} does not exist: build it first (`cargo build --workspace --bins --tests \
                 --examples`) or set SWITCHYARD_BIN",
                bin.display()
            );
        }
        let log = tempfile::NamedTempFile::new()?;
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{port}", &port.to_string()))
            .collect();
        // One append-mode description shared by stdout and stderr: two separate
        // `reopen()`s each start at offset 0 and overwrite each other's lines.
        let out = std::fs::OpenOptions::new().append(true).open(log.path())?;
        let err = out.try_clone()?;
        let child = Command::new(bin)
            .args(&args)
            .env("SWITCHYARD_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawning {name}: {} {args:?}", bin.display()))?;
        Ok(Self {
            name: name.to_owned(),
            port,
            admin_port: 0,
            child,
            log,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The admin API's base URL (its own listener).
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// `GET` of an admin path with the admin `token`, as JSON (`Null` when unreadable: the
    /// callers poll until a field appears).
    pub async fn admin_json(&self, path: &str, token: &str) -> serde_json::Value {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.admin_url()))
            .bearer_auth(token)
            .send()
            .await;
        match response {
            Ok(r) => r.json().await.unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }

    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        kill(self.pid(), signal).with_context(|| format!("{signal} to {}", self.name))
    }

    /// Waits until `GET path` answers 200, or fails with the process log.
    pub async fn wait_ready(&mut self, path: &str) -> anyhow::Result<()> {
        self.wait_ready_within(path, Duration::from_secs(20)).await
    }

    /// [`Proc::wait_ready`] with a custom deadline (plugins in Python/JS compile for seconds).
    pub async fn wait_ready_within(&mut self, path: &str, within: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        let url = format!("{}{path}", self.url());
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status}:\n{}", self.name, self.log_text());
            }
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!(
            "{} not ready at {url} after {within:?}:\n{}",
            self.name,
            self.log_text()
        )
    }

    /// Waits for the process to exit (bounded); returns whether it exited.
    pub async fn wait_exit(&mut self, within: Duration) -> anyhow::Result<bool> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(false)
    }

    /// The exit status, once the process has exited.
    pub fn exit_status(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = kill(self.pid(), Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a mocker with extra flags and waits for `/health`.
pub async fn mocker(extra: &[&str]) -> anyhow::Result<Proc> {
    let port = free_port();
    let mut args = vec![
        "mocker".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:{port}".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut p = Proc::spawn("mocker", &args, port)?;
    // A mocker started with --status answers /health with that status: wait on /v1/models.
    p.wait_ready("/v1/models").await?;
    Ok(p)
}

/// Starts a mocker that requires `Authorization: Bearer KEY` on `/v1/*` (vLLM's `--api-key`);
/// it waits on `/health`, which the key does not guard.
pub async fn mocker_with_key(key: &str, extra: &[&str]) -> anyhow::Result<Proc> {
    let port = free_port();
    let mut args = vec![
        "mocker".to_owned(),
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "--api-key".to_owned(),
        key.to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut p = Proc::spawn("mocker", &args, port)?;
    p.wait_ready("/health").await?;
    Ok(p)
}

/// Starts a frontend with `serve` flags and waits for `/live`. Its admin API (when it has
/// an admin token) listens on a port of its own too: [`Proc::admin_url`].
pub async fn frontend(extra: &[String]) -> anyhow::Result<Proc> {
    let port = free_port();
    let admin_port = free_port();
    let mut args = vec![
        "serve".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:{port}".to_owned(),
        "--admin-listen".to_owned(),
        format!("127.0.0.1:{admin_port}"),
    ];
    args.extend(extra.iter().cloned());
    let mut p = Proc::spawn("frontend", &args, port)?;
    p.admin_port = admin_port;
    p.wait_ready("/live").await?;
    Ok(p)
}

/// `--worker MODEL=URL` flags for `mockers`.
pub fn worker_flags(model: &str, mockers: &[&Proc]) -> Vec<String> {
    mockers
        .iter()
        .flat_map(|m| ["--worker".to_owned(), format!("{model}={}", m.url())])
        .collect()
}

/// Starts a frontend that loads slow-to-compile plugins (Python/JS): a long readiness deadline.
pub async fn frontend_slow(extra: &[String]) -> anyhow::Result<Proc> {
    let port = free_port();
    let admin_port = free_port();
    let mut args = vec![
        "serve".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:{port}".to_owned(),
        "--admin-listen".to_owned(),
        format!("127.0.0.1:{admin_port}"),
    ];
    args.extend(extra.iter().cloned());
    let mut p = Proc::spawn("frontend", &args, port)?;
    p.admin_port = admin_port;
    p.wait_ready_within("/live", Duration::from_secs(240))
        .await?;
    Ok(p)
}

/// Starts a frontend with a YAML config (written to a temp file) plus `serve` flags.
pub async fn frontend_with_config(
    yaml: &str,
    extra: &[String],
) -> anyhow::Result<(Proc, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("switchyard.yaml");
    std::fs::write(&path, yaml)?;
    let mut args = vec!["--config".to_owned(), path.display().to_string()];
    args.extend(extra.iter().cloned());
    Ok((frontend(&args).await?, dir))
}
