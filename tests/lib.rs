//! Harness for the integration tests: starts real processes on free loopback ports.
