//! Harness for the integration tests: starts real `switchyard` processes (frontend, mockers)
//! on free loopback ports, waits until they are ready, and kills them on drop.
//!
//! The binary is `target/<profile>/switchyard` next to the test executable (built by the
//! README test command), or `$SWITCHYARD_BIN`.

pub mod certs;
pub mod http;
pub mod process;
pub mod services;

pub use process::{
    frontend, frontend_slow, frontend_with_config, mocker, mocker_with_key, worker_flags,
};

pub use process::{example_bin, free_port, switchyard_bin, Proc};
