//! pgbox: the supervisor (`pgboxd`) of a PostgreSQL high-availability appliance.
//!
//! Layout: `config` (the first-boot file), `ha` (the pure decision core),
//! `dcs` (etcd), `postgres` (the local server), `executor` (carries out the
//! core's actions), `daemon` (the loop), `api` (REST on 8008), `status`
//! (the snapshot the API reads), `leader_check` (the fresh check behind
//! `GET /primary`), `ops_mailbox` (restart, reload and reinitialize asked through the
//! API, waiting for the loop), `tls` (the API's HTTPS), `firstboot` (`pgboxd firstboot`: finds,
//! keeps and applies the first-boot file at every boot).
pub mod api;
pub mod backup;
pub mod clock;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod dcs;
pub mod executor;
pub mod failsafe;
pub mod firstboot;
pub mod ha;
pub mod ha_loop;
pub mod leader_check;
pub mod logging;
pub mod ops_mailbox;
pub mod postgres;
pub mod sim;
pub mod status;
pub mod tls;
pub mod watchdog;
