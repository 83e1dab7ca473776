//! Seeding a benchmark's data directory through `berth admin`, shared by the benchmarks that drive the release
//! binary (each includes this file).

use std::process::Command;

/// The `berth` binary cargo built for this benchmark.
pub const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// Creates the user `email` (password `password`) owning workspace `workspace` in the data directory `data`, and
/// an API key for them there; returns the key.
pub fn seed_user_and_key(data: &str, email: &str, password: &str, workspace: &str) -> String {
    admin(data, &["create-user", "--email", email, "--password", password, "--workspace", workspace]);
    let out = admin(data, &["create-key", "--email", email, "--workspace", workspace, "--name", "bench"]);
    out.lines().last().expect("create-key printed nothing").trim().to_owned()
}

/// Runs `berth admin <args> --data-dir <data>` and returns its standard output; panics with its error if it failed.
fn admin(data: &str, args: &[&str]) -> String {
    let out = Command::new(BIN).arg("admin").args(args).args(["--data-dir", data]).output().unwrap();
    assert!(out.status.success(), "berth admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
