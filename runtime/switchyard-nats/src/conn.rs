//! One NATS connection and a watch of its state.
//!
//! async-nats reconnects and resubscribes on its own, but messages published while the link
//! was down are gone. Anything keeping state derived from messages (the KV index) must
//! therefore resync after each reconnect, so the state carries a connect counter: a change
//! in `connects` means "you may have missed something".

use std::time::Duration;

use async_nats::{ConnectOptions, Event};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::auth::NatsAuth;
use crate::redact::redact_url;

use crate::Result;

/// Connection state as seen by event consumers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnState {
    pub connected: bool,
    /// Successful connects so far (1 after the first).
    pub connects: u64,
}

/// A NATS client plus its state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NatsConnection {
    pub client: async_nats::Client,
    state: watch::Receiver<ConnState>,
}

impl NatsConnection {
    pub fn state(&self) -> ConnState {
        *self.state.borrow()
    }

    pub fn watch_state(&self) -> watch::Receiver<ConnState> {
        self.state.clone()
    }

    pub fn is_connected(&self) -> bool {
        self.state().connected
    }

    /// Waits (bounded) until the server has processed everything sent so far, e.g. so a
    /// subscription is live before the caller relies on it. A no-op while disconnected:
    /// async-nats re-sends subscriptions on reconnect anyway.
    ///
    /// `flush` alone only puts our commands on the socket; the server reads each connection
    /// on its own, so another connection's publish could still overtake our SUB (seen as lost
    /// first events on a loaded machine). A message to ourselves is a true barrier: the server
    /// handles one connection's commands in order, so when it comes back every earlier SUB
    /// is registered.
    pub async fn settle(&self) {
        if !self.is_connected() {
            return;
        }
        let client = &self.client;
        let barrier = async {
            let inbox = client.new_inbox();
            let mut echo = client.subscribe(inbox.clone()).await.ok()?;
            client.publish(inbox, bytes::Bytes::new()).await.ok()?;
            client.flush().await.ok()?;
            echo.next().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), barrier).await;
    }
}

/// Connects to `url` (e.g. `nats://127.0.0.1:4222`) as `name`. Returns at once even if the
/// server is down: the client keeps trying in the background, so a frontend starts (and
/// routes load-only) without NATS.
pub async fn connect(url: &str, name: &str) -> Result<NatsConnection> {
    connect_with(url, name, &NatsAuth::default()).await
}

/// [`connect`] with credentials and TLS settings.
pub async fn connect_with(url: &str, name: &str, auth: &NatsAuth) -> Result<NatsConnection> {
    let (tx, state) = watch::channel(ConnState::default());
    // Try a plain connect first and only fall back to async-nats' retry-on-initial-connect
    // mode when the server is down: in that mode (0.51), commands issued right after the
    // first connect were observed to stall until the next ping on a current-thread runtime.
    let client = match auth
        .apply(options(name, tx.clone()))
        .await?
        .connect(url)
        .await
    {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(url = %redact_url(url), error = %e, "NATS unreachable; retrying in the background");
            auth.apply(options(name, tx))
                .await?
                .retry_on_initial_connect()
                .connect(url)
                .await?
        }
    };
    Ok(NatsConnection { client, state })
}

fn options(name: &str, tx: watch::Sender<ConnState>) -> ConnectOptions {
    ConnectOptions::new()
        .name(name)
        // Reconnect quickly at first, never slower than every 2 s.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts.max(1) as u64).min(2_000))
        })
        // Notice a silently dead link within ~20 s (two missed pings).
        .ping_interval(Duration::from_secs(10))
        .connection_timeout(Duration::from_secs(2))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                match event {
                    Event::Connected => tx.send_modify(|s| {
                        s.connected = true;
                        s.connects += 1;
                    }),
                    Event::Disconnected | Event::Closed => tx.send_modify(|s| s.connected = false),
                    _ => {}
                }
            }
        })
}
