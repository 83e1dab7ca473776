//! Berth: a self-hosted PaaS in one binary. See README.md for the map of modules.

pub mod app;
pub mod build;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod docker;
pub mod domain;
pub mod proxy;
pub mod services;
pub mod store;
pub mod tasks;
pub mod tls;
pub mod web;

/// mimalloc instead of the system allocator, for every binary built on this crate (the server, its tests and
/// benchmarks alike): the proxy allocates a little per request (headers, bodies, futures), and glibc's malloc was
/// about 7% of the proxy's CPU under load in the edge benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
