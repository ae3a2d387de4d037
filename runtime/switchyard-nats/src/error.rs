//! The crate's one error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nats connect: {0}")]
    Connect(#[from] async_nats::ConnectError),
    #[error("nats subscribe: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error("nats publish: {0}")]
    Publish(#[from] async_nats::PublishError),
    #[error("payload: {0}")]
    Json(#[from] serde_json::Error),
    #[error("dump from {instance}: {reason}")]
    Dump { instance: String, reason: String },
    #[error("zmq: {0}")]
    Zmq(#[from] zeromq::ZmqError),
    #[error("vLLM event: {0}")]
    Vllm(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
