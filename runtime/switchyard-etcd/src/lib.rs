//! switchyard-etcd (work in progress).
