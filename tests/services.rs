//! Real `etcd` and `nats-server` processes on free loopback ports, killed (and reaped) on
//! drop: the one copy of this harness, used by the `it` tests and by the etcd and NATS
//! crates' own tests. A missing binary fails the test loudly with a pointer to
//! `scripts/install-services.sh` (Debian: etcd-server, nats-server); tests never skip.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::process::free_port;

/// Where Debian and friends put service binaries; `/usr/sbin` is often not on a user's PATH.
const BIN_DIRS: [&str; 4] = ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"];

pub fn find_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(BIN_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "`{name}` not found on PATH or in {BIN_DIRS:?}: install it with \
                 `scripts/install-services.sh` (Debian: etcd-server, nats-server)"
            )
        })
}

/// A single-member etcd with a private data directory.
pub struct Etcd {
    child: Option<Child>,
    pub port: u16,
    peer_port: u16,
    /// Plain-HTTP metrics/health listener: readiness without a TLS client.
    metrics_port: u16,
    /// Client TLS: `(ca, server cert, server key)`; clients must present a certificate
    /// signed by `ca`.
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
    dir: tempfile::TempDir,
}

impl Etcd {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_inner(None).await
    }

    /// An etcd serving clients over TLS only (`https://`), with `--client-cert-auth`.
    pub async fn start_tls(certs: &crate::certs::Certs) -> anyhow::Result<Self> {
        let tls = (
            certs.ca.clone(),
            certs.server_cert.clone(),
            certs.server_key.clone(),
        );
        Self::start_inner(Some(tls)).await
    }

    async fn start_inner(tls: Option<(PathBuf, PathBuf, PathBuf)>) -> anyhow::Result<Self> {
        let mut e = Self {
            child: None,
            port: free_port(),
            peer_port: free_port(),
            metrics_port: free_port(),
            tls,
            dir: tempfile::tempdir()?,
        };
        e.spawn().await?;
        Ok(e)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: a crashed or lost etcd.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same ports with the same data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn().await
    }

    /// Starts again on the same ports with no data: a replaced etcd that knows nothing of
    /// earlier leases and keys.
    pub async fn restart_wiped(&mut self) -> anyhow::Result<()> {
        self.kill();
        let _ = std::fs::remove_dir_all(self.dir.path().join("data"));
        self.spawn().await
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let metrics = format!("http://127.0.0.1:{}", self.metrics_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log"))?;
        let mut tls_args: Vec<std::ffi::OsString> = Vec::new();
        if let Some((ca, cert, key)) = &self.tls {
            for (flag, path) in [
                ("--trusted-ca-file", ca),
                ("--cert-file", cert),
                ("--key-file", key),
            ] {
                tls_args.push(flag.into());
                tls_args.push(path.into());
            }
            tls_args.push("--client-cert-auth".into());
        }
        let child = Command::new(find_binary("etcd")?)
            .args(["--name", "it"])
            .args(&tls_args)
            .args(["--listen-metrics-urls", &metrics])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("it={peer}")])
            .args(["--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawn etcd")?;
        self.child = Some(child);
        // Ready when /health reports a leader.
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{metrics}/health")).send().await {
                if r.text().await.unwrap_or_default().contains("\"true\"") {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log =
                    std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
                bail!("etcd exited early ({status}):\n{log}");
            }
            if Instant::now() > deadline {
                bail!("etcd not ready in 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A core-NATS server (no state, so a restart on the same port is a clean outage).
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    /// Extra `nats-server` flags (auth, TLS).
    args: Vec<String>,
}

impl Nats {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_on(free_port())
    }

    /// On a given port (a client may be configured with it before the server exists).
    pub fn start_on(port: u16) -> anyhow::Result<Self> {
        Self::start_with_args(port, &[])
    }

    /// With extra `nats-server` flags, e.g. `--user u --pass p` or `--auth TOKEN`.
    pub fn start_with_args(port: u16, args: &[&str]) -> anyhow::Result<Self> {
        let mut n = Self {
            child: None,
            port,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        n.spawn()?;
        Ok(n)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(find_binary("nats-server")?)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn nats-server")?;
        self.child = Some(child);
        // Ready when it greets a TCP client with INFO.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_ok() && &buf == b"INFO" {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                bail!("nats-server exited early: {status}");
            }
            if Instant::now() > deadline {
                bail!("nats-server not ready in 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}
