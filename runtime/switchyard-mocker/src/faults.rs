//! Fault knobs: a worker that errors, hangs, reports a fixed status, crashes, stalls
//! mid-stream (optionally behind keep-alive comments) or reports an in-band error event.
//! Routers are tested against these; each knob costs nothing when it is off.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::MockerArgs;

/// How long a dying mocker waits after its last token so the bytes reach the client.
const DYING_FLUSH: Duration = Duration::from_millis(50);

/// What happens to one generation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Answer with 500.
    Fail,
    /// Never answer.
    Hang,
    /// Answer with `--status`.
    Status(StatusCode),
}

/// The outcome of generating one more token under `--die-after-tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenBudget {
    /// Keep going.
    Continue,
    /// This was the last token the process will produce: send it, then stop.
    Last,
    /// The process is about to exit: produce nothing more.
    Exhausted,
}

#[derive(Debug)]
pub struct Faults {
    fail_rate: f64,
    hang_rate: f64,
    status: Option<StatusCode>,
    die_after: Option<u64>,
    stall_after: Option<u64>,
    stall_keepalive: Option<Duration>,
    error_after: Option<u64>,
    generated: AtomicU64,
    rng: Mutex<SmallRng>,
}

impl Faults {
    pub fn new(args: &MockerArgs) -> Self {
        Self {
            fail_rate: args.fail_rate,
            hang_rate: args.hang_rate,
            status: args.status.and_then(|s| StatusCode::from_u16(s).ok()),
            die_after: args.die_after_tokens,
            stall_after: args.stall_after_tokens,
            stall_keepalive: args.stall_keepalive_ms.map(Duration::from_millis),
            error_after: args.error_after_tokens,
            generated: AtomicU64::new(0),
            rng: Mutex::new(SmallRng::seed_from_u64(args.seed)),
        }
    }

    /// The forced status for `/health` and generation, if `--status` is set.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// Decides the fate of one generation request.
    pub fn roll(&self) -> Fault {
        if let Some(status) = self.status {
            return Fault::Status(status);
        }
        if self.fail_rate <= 0.0 && self.hang_rate <= 0.0 {
            return Fault::None;
        }
        let x: f64 = self.rng.lock().gen();
        if x < self.fail_rate {
            Fault::Fail
        } else if x < self.fail_rate + self.hang_rate {
            Fault::Hang
        } else {
            Fault::None
        }
    }

    /// Accounts one token against `--die-after-tokens`.
    pub fn spend_token(&self) -> TokenBudget {
        let Some(limit) = self.die_after else {
            return TokenBudget::Continue;
        };
        let n = self.generated.fetch_add(1, Relaxed) + 1;
        match n.cmp(&limit) {
            std::cmp::Ordering::Less => TokenBudget::Continue,
            std::cmp::Ordering::Equal => TokenBudget::Last,
            std::cmp::Ordering::Greater => TokenBudget::Exhausted,
        }
    }

    /// Whether a sequence that has produced `produced` tokens stalls now
    /// (`--stall-after-tokens`).
    pub fn stalls_at(&self, produced: u64) -> bool {
        self.stall_after.is_some_and(|n| produced >= n)
    }

    /// How often a stalled stream sends a keep-alive comment (`--stall-keepalive-ms`), once
    /// it has produced `produced` tokens and stalls.
    pub fn stall_keepalive(&self, produced: u64) -> Option<Duration> {
        self.stall_keepalive.filter(|_| self.stalls_at(produced))
    }

    /// Whether a stream that has produced `produced` tokens sends its in-band error event now
    /// (`--error-after-tokens`).
    pub fn errors_at(&self, produced: u64) -> bool {
        self.error_after == Some(produced)
    }

    /// The in-band error event, shaped like vLLM's when its engine fails mid-stream.
    pub fn error_event() -> Bytes {
        Bytes::from_static(
            b"data: {\"error\":{\"object\":\"error\",\"message\":\"simulated engine failure (--error-after-tokens)\",\"type\":\"InternalServerError\",\"param\":null,\"code\":500}}\n\n",
        )
    }

    /// Ends the process shortly, without any cleanup: what a crashed GPU worker looks like.
    /// A plain thread, so a busy or stopped runtime cannot delay it.
    pub fn die_soon() {
        tracing::warn!("--die-after-tokens reached: exiting");
        std::thread::spawn(|| {
            std::thread::sleep(DYING_FLUSH);
            std::process::exit(1);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_budget_ends_exactly_at_the_limit() {
        let faults = Faults::new(&MockerArgs {
            die_after_tokens: Some(3),
            ..MockerArgs::default()
        });
        let got: Vec<_> = (0..5).map(|_| faults.spend_token()).collect();
        use TokenBudget::*;
        assert_eq!(got, [Continue, Continue, Last, Exhausted, Exhausted]);
    }

    #[test]
    fn a_stall_starts_at_the_configured_token() {
        let faults = Faults::new(&MockerArgs {
            stall_after_tokens: Some(2),
            ..MockerArgs::default()
        });
        assert!(!faults.stalls_at(1));
        assert!(faults.stalls_at(2));
        assert!(!Faults::new(&MockerArgs::default()).stalls_at(1_000));
    }

    #[test]
    fn keepalives_and_error_events_start_at_their_token() {
        let faults = Faults::new(&MockerArgs {
            stall_after_tokens: Some(2),
            stall_keepalive_ms: Some(50),
            error_after_tokens: Some(3),
            ..MockerArgs::default()
        });
        assert_eq!(faults.stall_keepalive(1), None);
        assert_eq!(faults.stall_keepalive(2), Some(Duration::from_millis(50)));
        assert!(!faults.errors_at(2) && faults.errors_at(3));
        let off = Faults::new(&MockerArgs::default());
        assert_eq!(off.stall_keepalive(100), None);
        assert!(!off.errors_at(0));
        let event = Faults::error_event();
        let json: serde_json::Value =
            serde_json::from_slice(&event["data: ".len()..event.len() - 2]).unwrap();
        assert_eq!(json["error"]["code"], 500);
    }

    #[test]
    fn rates_split_requests_in_proportion() {
        let faults = Faults::new(&MockerArgs {
            fail_rate: 0.2,
            hang_rate: 0.3,
            ..MockerArgs::default()
        });
        let rolls: Vec<_> = (0..10_000).map(|_| faults.roll()).collect();
        let share = |f| rolls.iter().filter(|&&r| r == f).count() as f64 / 10_000.0;
        assert!((share(Fault::Fail) - 0.2).abs() < 0.03);
        assert!((share(Fault::Hang) - 0.3).abs() < 0.03);
    }

    #[test]
    fn status_overrides_everything_and_no_knobs_means_no_fault() {
        let off = Faults::new(&MockerArgs::default());
        assert_eq!(off.roll(), Fault::None);
        assert_eq!(off.spend_token(), TokenBudget::Continue);
        let status = Faults::new(&MockerArgs {
            status: Some(503),
            fail_rate: 1.0,
            ..MockerArgs::default()
        });
        assert_eq!(
            status.roll(),
            Fault::Status(StatusCode::SERVICE_UNAVAILABLE)
        );
    }
}
