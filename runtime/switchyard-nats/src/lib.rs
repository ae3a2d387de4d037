//! switchyard-nats (work in progress).
