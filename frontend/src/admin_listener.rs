//! The admin API's own listener (`admin.listen`, default `127.0.0.1:8001`), kept off the
//! data plane: `/admin/*` is served only here (the public listener answers 404), and a
//! data-plane client asks for a routing explanation with the separate explain token, so it
//! never holds admin rights. The listener starts only when an admin token is configured (the
//! admin API is off without one), so frontends without one never bind the port.
//!
//! [`route`] is the one place the admin router is put together.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::body::Body;
use crate::error::ApiError;
use crate::http::{error_response, REQUEST_ID_HEADER};

/// `admin:` in the YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the admin API listens (keep it inside the cluster / on loopback).
    pub listen: SocketAddr,
    /// A file holding the admin token (a mounted Secret); sets `admin_token`.
    pub token_file: Option<String>,
    /// Token for `x-switchyard-explain` on data-plane requests; explain is off without one.
    pub explain_token: Option<String>,
    /// A file holding the explain token.
    pub explain_token_file: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8001)),
            token_file: None,
            explain_token: None,
            explain_token_file: None,
        }
    }
}

impl AdminConfig {
    /// Reads the token files: the admin token into `admin_token`, the explain token into
    /// `explain_token`. Errors name the key.
    pub fn read_token_files(&mut self, admin_token: &mut Option<String>) -> Result<(), String> {
        if let Some(path) = &self.token_file {
            *admin_token = Some(read_token("admin.token_file", path)?);
        }
        if let Some(path) = &self.explain_token_file {
            self.explain_token = Some(read_token("admin.explain_token_file", path)?);
        }
        Ok(())
    }

    pub fn validate(&self, admin_token: Option<&str>) -> Result<(), String> {
        if let Some(token) = &self.explain_token {
            if token.len() < 8 {
                return Err("admin.explain_token: must be at least 8 characters".into());
            }
            if admin_token == Some(token.as_str()) {
                return Err(
                    "admin.explain_token: must differ from the admin token (data-plane clients carry it)"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

fn read_token(key: &str, path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{key}: {path}: {e}"))?;
    let token = text.trim_end();
    if token.is_empty() {
        return Err(format!("{key}: {path} is empty"));
    }
    Ok(token.to_owned())
}

/// Binds `admin.listen` and serves the admin API there, when an admin token is configured.
pub async fn start(app: &Arc<App>) -> anyhow::Result<Option<JoinHandle<()>>> {
    if app.config.http.admin_token.is_none() {
        return Ok(None);
    }
    let addr = app.config.http.admin.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("admin.listen {addr}: {e}"))?;
    tracing::info!(listen = %listener.local_addr()?, "admin API ready");
    Ok(Some(tokio::spawn(serve(listener, Arc::clone(app)))))
}

async fn serve(listener: TcpListener, app: Arc<App>) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(
            app.config.http.limits.header_read_timeout_ms,
        ));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let app = Arc::clone(&app);
        let service = service_fn(move |request| {
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(route(&app, request).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
}

/// The admin router.
pub async fn route(app: &Arc<App>, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let mut response = if path.starts_with("/admin/") || path == "/console" {
        crate::admin::handle(app, &parts, body).await
    } else {
        error_response(&ApiError::not_found(format!("No admin route for {path}.")))
    };
    let id = format!("{:032x}", rand::random::<u128>());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        // Flattened argument groups clash at run time, not compile time; catch it here.
        <crate::cli::Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn token_files_are_read_and_the_explain_token_must_differ() {
        let dir = tempfile::tempdir().unwrap();
        let admin_file = dir.path().join("admin");
        std::fs::write(&admin_file, "admin-secret\n").unwrap();
        let mut config = AdminConfig {
            token_file: Some(admin_file.display().to_string()),
            explain_token: Some("admin-secret".into()),
            ..AdminConfig::default()
        };
        let mut admin_token = None;
        config.read_token_files(&mut admin_token).unwrap();
        assert_eq!(admin_token.as_deref(), Some("admin-secret"));
        let err = config.validate(admin_token.as_deref()).unwrap_err();
        assert!(err.contains("must differ"), "{err}");

        config.explain_token_file = Some("/no/such/file".into());
        let err = config.read_token_files(&mut admin_token).unwrap_err();
        assert!(err.contains("admin.explain_token_file"), "{err}");
    }
}
