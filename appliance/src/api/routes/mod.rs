//! One file per group of routes.
pub mod cluster;
pub mod config;
pub mod failsafe;
pub mod health;
pub mod history;
pub mod member_ops;
pub mod metrics;
pub mod operations;
pub mod patroni;
