//! Berth: a self-hosted PaaS in one binary. See README.md for the map of modules.

pub mod app;
pub mod build;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod docker;
pub mod domain;
pub mod memory;
pub mod proxy;
pub mod s3;
pub mod services;
pub mod store;
pub mod tasks;
pub mod tls;
pub mod web;
