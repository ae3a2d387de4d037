//! Scripted fake workers for socket-free tests of the request path: a worker's response
//! body played from a script ([`Script`]), and a set of workers behind the worker client's
//! transport seam ([`FakeWorkers`], [`switchyard_runtime::client::Transport`]) that answers
//! each instance's requests in the order its replies were queued and logs what it was sent.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;
use switchyard_runtime::client::{Transport, TransportFuture, WorkerBody};

/// One step of a scripted worker body.
#[derive(Debug, Clone)]
pub enum Part {
    Data(&'static str),
    /// The worker has nothing yet (the poll returns `Pending`, registering no waker: for
    /// tests that poll by hand).
    Wait,
    /// The connection breaks.
    Break,
}

/// A worker's response body played from a script; it ends (EOF) when the script does, and
/// says when it was dropped (the connection closed, which cancels the generation).
pub struct Script {
    parts: VecDeque<Part>,
    dropped: Arc<AtomicBool>,
}

impl Script {
    /// The body and the flag its drop sets.
    pub fn new(parts: Vec<Part>) -> (Self, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        let script = Self {
            parts: parts.into(),
            dropped: Arc::clone(&dropped),
        };
        (script, dropped)
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl http_body::Body for Script {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
        match self.parts.pop_front() {
            None => Poll::Ready(None),
            Some(Part::Data(s)) => {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(s.as_bytes())))))
            }
            Some(Part::Wait) => Poll::Pending,
            Some(Part::Break) => Poll::Ready(Some(Err("connection reset"))),
        }
    }
}

/// An SSE data event (leaked: test scripts hold `&'static str`).
pub fn event(data: &str) -> &'static str {
    Box::leak(format!("data: {data}\n\n").into_boxed_str())
}

/// What a fake worker answers one request with.
#[derive(Debug, Clone)]
pub enum Reply {
    /// No response: the connection is refused.
    Refused,
    /// A whole response with this status and body.
    Whole(u16, &'static str),
    /// A 200 event stream played from these parts.
    Stream(Vec<Part>),
}

/// One request a fake worker received.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The instance URL's host (the instance's id in these tests).
    pub host: String,
    pub path: String,
    pub body: serde_json::Value,
}

/// Fake workers keyed by their URL's host (`http://<host>`).
#[derive(Default)]
pub struct FakeWorkers {
    replies: Mutex<HashMap<String, VecDeque<Reply>>>,
    sent: Mutex<Vec<Sent>>,
}

impl FakeWorkers {
    /// Queues `reply` for the next request to `host`.
    pub fn reply(&self, host: &str, reply: Reply) {
        self.replies
            .lock()
            .entry(host.to_owned())
            .or_default()
            .push_back(reply);
    }

    /// What the workers were sent, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().clone()
    }

    /// The hosts the requests went to, in order.
    pub fn hosts(&self) -> Vec<String> {
        self.sent.lock().iter().map(|s| s.host.clone()).collect()
    }
}

impl Transport for FakeWorkers {
    fn send(&self, request: Request<Full<Bytes>>) -> TransportFuture {
        let host = request.uri().host().unwrap_or_default().to_owned();
        let path = request.uri().path().to_owned();
        let reply = self
            .replies
            .lock()
            .get_mut(&host)
            .and_then(VecDeque::pop_front);
        // A `Full` body is ready at once.
        let raw = futures_util::FutureExt::now_or_never(request.into_body().collect())
            .and_then(Result::ok)
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        self.sent.lock().push(Sent {
            host,
            path,
            body: serde_json::from_slice(&raw).unwrap_or_default(),
        });
        Box::pin(async move {
            let answer = match reply {
                None | Some(Reply::Refused) => {
                    return Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into())
                }
                Some(Reply::Whole(status, body)) => {
                    let mut response = Response::new(WorkerBody::full(body));
                    *response.status_mut() = StatusCode::from_u16(status)?;
                    response
                }
                Some(Reply::Stream(parts)) => {
                    let (script, _) = Script::new(parts);
                    let mut response = Response::new(WorkerBody::new(script));
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/event-stream"),
                    );
                    response
                }
            };
            Ok(answer)
        })
    }
}

/// What the pipeline answers in, for tests that read a whole answer back
/// ([`super::relay::respond`]); the product answers in the frontend's body enum.
pub enum Answer {
    Whole(Bytes),
    Relay(Box<super::relay::RelayBody>),
    Native(Box<super::native_relay::NativeRelay>),
}

impl From<Bytes> for Answer {
    fn from(bytes: Bytes) -> Self {
        Self::Whole(bytes)
    }
}

impl From<Box<super::relay::RelayBody>> for Answer {
    fn from(relay: Box<super::relay::RelayBody>) -> Self {
        Self::Relay(relay)
    }
}

impl From<Box<super::native_relay::NativeRelay>> for Answer {
    fn from(native: Box<super::native_relay::NativeRelay>) -> Self {
        Self::Native(native)
    }
}

impl Answer {
    /// Everything the client receives, to the end of the body.
    pub async fn text(self) -> String {
        let bytes = match self {
            Self::Whole(bytes) => Ok(bytes),
            Self::Relay(relay) => (*relay).collect().await.map(|c| c.to_bytes()),
            Self::Native(native) => (*native).collect().await.map(|c| c.to_bytes()),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(never) => match never {},
        };
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
