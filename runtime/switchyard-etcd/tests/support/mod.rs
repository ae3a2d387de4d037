//! A real `etcd` process on free loopback ports with a private data directory, killed (and
//! reaped) on drop. Missing binaries fail the test loudly: run `scripts/install-services.sh`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_etcd::EtcdConfig;

/// Where Debian and friends put service binaries; `/usr/sbin` is often not on a user's PATH.
const BIN_DIRS: [&str; 4] = ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"];

pub fn find_binary(name: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(BIN_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH or in {BIN_DIRS:?}. These tests start real services; \
                 install them with `scripts/install-services.sh` (Debian: etcd-server, nats-server)."
            )
        })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A private temp directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("switchyard-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Etcd {
    child: Option<Child>,
    pub client_port: u16,
    peer_port: u16,
    dir: TempDir,
}

impl Etcd {
    /// Starts etcd and waits (bounded) until it serves requests.
    pub async fn start() -> Self {
        let mut etcd = Self {
            child: None,
            client_port: free_port(),
            peer_port: free_port(),
            dir: TempDir::new("etcd"),
        };
        etcd.spawn_process().await;
        etcd
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn config(&self) -> EtcdConfig {
        let mut cfg = EtcdConfig::new(&self.url());
        cfg.connect_timeout = Duration::from_secs(1);
        cfg.request_timeout = Duration::from_secs(2);
        // Loose enough for a loaded 2-core machine; a killed etcd is noticed by the reset anyway.
        cfg.keep_alive = Duration::from_secs(3);
        cfg
    }

    /// SIGKILL, as a crash or a lost machine would look.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same ports; `wipe` discards the data (a replaced etcd).
    pub async fn restart(&mut self, wipe: bool) {
        self.kill();
        if wipe {
            let _ = std::fs::remove_dir_all(self.data_dir());
        }
        self.spawn_process().await;
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn spawn_process(&mut self) {
        let bin = find_binary("etcd");
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).expect("log file");
        let child = Command::new(bin)
            .args(["--name", "test"])
            .arg("--data-dir")
            .arg(self.data_dir())
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
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Ok(mut c)) = tokio::time::timeout(
                Duration::from_secs(1),
                etcd_client::Client::connect([self.url()], None),
            )
            .await
            {
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(1), c.get("ready", None)).await
                {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log =
                    std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
                panic!("etcd exited early ({status}):\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become ready in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
