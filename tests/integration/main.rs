//! One integration test binary: boots Berth in-process (or as the real binary) against real SQLite, a real
//! Docker engine and real HTTP, and checks what a user of the API would notice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_logs;
mod accounts;
mod api_keys;
mod auto_build;
mod binary;
mod browser;
mod dashboard;
mod databases;
mod databases_s3;
mod deploy;
mod deploy_options;
mod domains;
mod edge;
mod git;
mod members;
mod moto;
mod notifications;
mod openapi;
mod projects;
mod recovery;
mod runtime_logs;
mod support;
mod tls;
mod variables;
mod workspaces;
