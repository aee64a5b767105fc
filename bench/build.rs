//! The process-level harness this benchmark shares with appliance/tests names
//! the pgboxd and pgboxctl binaries through the variables Cargo sets only for
//! a package's own tests; here they are the workspace's binaries of the same
//! profile as the benchmark (or those under $PGBOX_BIN_DIR).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=PGBOX_BIN_DIR");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "release".into());
    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out: the binaries
    // of the same build sit three levels up, wherever the target dir is.
    let dir = match std::env::var_os("PGBOX_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var("OUT_DIR").unwrap())
            .ancestors()
            .nth(3)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target").join(profile)),
    };
    for bin in ["pgboxd", "pgboxctl"] {
        println!(
            "cargo:rustc-env=CARGO_BIN_EXE_{bin}={}",
            dir.join(bin).display()
        );
    }
}
