//! How a connection proves who it is and protects the link: token, user/password, NATS
//! credentials file or nkey seed, and TLS (a private CA, a client certificate).
//!
//! Secrets are read from files named in the config, never taken as values, so they appear
//! neither on a command line nor in a config dump; the URL may still carry `user:pass@`
//! (async-nats reads it), and is redacted wherever it is logged ([`crate::redact_url`]).

use std::path::PathBuf;

use async_nats::ConnectOptions;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The `nats_auth:` section of the frontend config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsAuth {
    /// File holding the server's authorization token.
    pub token_file: Option<PathBuf>,
    /// User name; the password is read from `password_file`.
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// A NATS `.creds` file (JWT + nkey seed).
    pub creds_file: Option<PathBuf>,
    /// File holding an nkey seed (`SU…`).
    pub nkey_seed_file: Option<PathBuf>,
    /// TLS settings; any of them turns TLS on (`tls.required` insists on it).
    pub tls: NatsTls,
}

/// TLS for the NATS link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsTls {
    /// PEM CA bundle that signs the server's certificate (instead of the system roots).
    pub ca: Option<PathBuf>,
    /// PEM client certificate and key, for servers that verify clients.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Refuse a server that does not offer TLS.
    pub required: bool,
}

impl NatsAuth {
    /// Checks that the settings make sense together; does not read the files.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let methods = [
            self.token_file.is_some(),
            self.user.is_some(),
            self.creds_file.is_some(),
            self.nkey_seed_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(
                "set at most one of token_file, user (+ password_file), creds_file, nkey_seed_file"
                    .into(),
            );
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Err("user and password_file go together".into());
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err("tls.cert and tls.key go together".into());
        }
        Ok(())
    }

    /// `options` with these credentials and TLS settings; reads the secret files.
    pub async fn apply(&self, mut options: ConnectOptions) -> Result<ConnectOptions> {
        self.validate().map_err(Error::Config)?;
        if let Some(path) = &self.token_file {
            options = options.token(read_secret(path)?);
        }
        if let (Some(user), Some(path)) = (&self.user, &self.password_file) {
            options = options.user_and_password(user.clone(), read_secret(path)?);
        }
        if let Some(path) = &self.nkey_seed_file {
            options = options.nkey(read_secret(path)?);
        }
        if let Some(path) = &self.creds_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        }
        let tls = &self.tls;
        if let Some(ca) = &tls.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if tls.required || tls.ca.is_some() || tls.cert.is_some() {
            options = options.require_tls(true);
        }
        Ok(options)
    }
}

/// A secret file's content without the trailing newline editors add.
fn read_secret(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicting_or_half_settings_are_refused() {
        assert!(NatsAuth::default().validate().is_ok());
        let two = NatsAuth {
            token_file: Some("t".into()),
            creds_file: Some("c".into()),
            ..Default::default()
        };
        assert!(two.validate().is_err());
        let user_only = NatsAuth {
            user: Some("u".into()),
            ..Default::default()
        };
        assert!(user_only.validate().is_err());
        let cert_only = NatsAuth {
            tls: NatsTls {
                cert: Some("c".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(cert_only.validate().is_err());
    }
}
