//! pgboxctl's subcommands, one file each.
pub mod config_check;
pub mod list;
pub mod ops;
pub mod tls_init;
