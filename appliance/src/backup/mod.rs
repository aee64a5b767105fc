//! Continuous WAL archiving and backups with pgBackRest.
//!
//! - `conf`: pgBackRest's configuration on each box (pure);
//! - `catch_up`: what a new primary archives for the primary it replaced;
//! - `pgbackrest`: running pgBackRest's commands and reading what they say;
//! - `schedule`: which backup is due (pure);
//! - `repository`: the backup node's service (`pgboxd repository`): its
//!   TLS server, the schedule, and an HTTP API for `pgboxctl backup`.
pub mod catch_up;
pub mod conf;
pub mod pgbackrest;
pub mod repository;
pub mod schedule;
