//! switchyard-plugin-host (work in progress).
