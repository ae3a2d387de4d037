//! Shared fixtures for the criterion benches (see `benches/README.md`).

use std::sync::Arc;

use switchyard_runtime::{Instance, InstanceSpec};

/// `n` instances of one model with some in-flight load spread over them.
pub fn instances(n: usize) -> Vec<Arc<Instance>> {
    let v: Vec<Arc<Instance>> = (0..n)
        .map(|i| {
            Arc::new(Instance::new(
                InstanceSpec::new(
                    format!("worker-{i}"),
                    "m",
                    format!("http://10.0.0.{i}:8000"),
                ),
                None,
            ))
        })
        .collect();
    v
}
