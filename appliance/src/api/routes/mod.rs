//! One file per group of routes.
pub mod cluster;
pub mod health;
pub mod history;
pub mod patroni;
