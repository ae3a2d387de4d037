//! Instance health: passive ejection from request outcomes (with a circuit breaker and a
//! max ejected fraction), the degraded mark for stalling instances, active probing
//! (`GET /health`), the idle canary, and the retry budget.
//!
//! Health is a filter in front of the routing policy: an instance that is ejected or failed
//! an active check is not a candidate. Passive ejection lasts `base * 2^(n-1)` for the n-th
//! consecutive ejection (capped); when it expires one trial request decides (half-open), and
//! one success resets the count.

mod budget;
mod canary;
mod pool;
mod probe;
mod state;

pub use budget::{RetryBudget, RetryBudgetConfig, RetryPermit};
pub use canary::{spawn_canary, CanaryConfig, CanaryPayload};
pub use pool::ejection_allowed;
pub use probe::{spawn_prober, ProbeConfig};
pub use state::{HealthConfig, HealthState, HealthStatus};
