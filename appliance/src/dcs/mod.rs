//! The distributed configuration store (etcd) adapter.
pub mod model;
