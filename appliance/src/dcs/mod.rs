//! The distributed configuration store (etcd) adapter.
pub mod access;
pub mod etcd;
pub mod leader_records;
pub mod lease;
pub mod membership;
pub mod model;
