//! The distributed configuration store (etcd) adapter.
pub mod access;
pub mod etcd;
pub mod lease;
pub mod model;
