//! The distributed configuration store (etcd) adapter.
pub mod etcd;
pub mod model;
