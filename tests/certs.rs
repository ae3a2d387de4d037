//! Throw-away certificates for TLS tests, made by the `openssl` command line: a CA, a server
//! certificate for `127.0.0.1`/`localhost` and a client certificate, all signed by that CA.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::services::find_binary;

/// PEM files in a private temporary directory (removed on drop).
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Certs {
    pub fn generate() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let p = |name: &str| dir.path().join(name);
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=switchyard-test-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            &[("-keyout", &p("ca.key")), ("-out", &p("ca.pem"))],
        )?;
        for (name, cn, eku) in [
            ("server", "127.0.0.1", "serverAuth,clientAuth"),
            ("client", "switchyard-client", "clientAuth"),
        ] {
            let ext = p(&format!("{name}.ext"));
            std::fs::write(
                &ext,
                format!(
                    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={eku}\n\
                     keyUsage=critical,digitalSignature,keyEncipherment\n"
                ),
            )?;
            openssl(
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-subj",
                    &format!("/CN={cn}"),
                ],
                &[
                    ("-keyout", &p(&format!("{name}.key"))),
                    ("-out", &p(&format!("{name}.csr"))),
                ],
            )?;
            openssl(
                &["x509", "-req", "-days", "2", "-CAcreateserial"],
                &[
                    ("-in", &p(&format!("{name}.csr"))),
                    ("-CA", &p("ca.pem")),
                    ("-CAkey", &p("ca.key")),
                    ("-extfile", &ext),
                    ("-out", &p(&format!("{name}.pem"))),
                ],
            )?;
        }
        Ok(Self {
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
            dir,
        })
    }

    /// Writes `secret` to a file in the same private directory (a password or token file).
    pub fn secret_file(&self, name: &str, secret: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{secret}\n"))?;
        Ok(path)
    }
}

fn openssl(args: &[&str], paths: &[(&str, &Path)]) -> anyhow::Result<()> {
    let mut cmd = Command::new(find_binary("openssl")?);
    cmd.args(args);
    for (flag, path) in paths {
        cmd.arg(flag).arg(path);
    }
    let out = cmd.output().context("run openssl")?;
    if !out.status.success() {
        bail!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
