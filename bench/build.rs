//! The process-level harness this benchmark shares with appliance/tests names
//! the pgboxd and pgboxctl binaries through the variables Cargo sets only for
//! a package's own tests; here they are the workspace's binaries of the same
//! profile as the benchmark (or those under $PGBOX_BIN_DIR).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=PGBOX_BIN_DIR");
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "release".into());
    let dir = match std::env::var_os("PGBOX_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
            .join("../target")
            .join(profile),
    };
    for bin in ["pgboxd", "pgboxctl"] {
        println!(
            "cargo:rustc-env=CARGO_BIN_EXE_{bin}={}",
            dir.join(bin).display()
        );
    }
}
