//! Kubernetes discovery against a mocked API server: instances and plugins appear, change and
//! disappear.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

mod instances;
mod mock;
mod plugins;
