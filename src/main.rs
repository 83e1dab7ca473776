//! The `berth` binary: parse the command line and hand off to [`berth::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    berth::cli::run(berth::cli::Cli::parse())
}
