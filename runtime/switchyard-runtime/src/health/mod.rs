//! Instance health: passive ejection from request outcomes, and active probing.
//!
//! Health is a filter in front of the routing policy: an instance that is ejected or failed
//! its probe is not a candidate. Passive ejection lasts `base * 2^(n-1)` for the n-th
//! consecutive ejection (capped), so a flapping instance is retried ever less often, and one
//! success after an ejection resets the count.

mod probe;
mod state;

pub use probe::{spawn_prober, ProbeConfig};
pub use state::{HealthConfig, HealthState, HealthStatus};
