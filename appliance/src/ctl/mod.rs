//! pgboxctl's subcommands, one file each.
pub mod backup;
pub mod colour;
pub mod config_check;
pub mod list;
pub mod ops;
pub mod status;
pub mod tls_init;
