//! HTTP: the JSON API under `/api` and the dashboard pages at `/` with their assets under `/static`. Handlers extract input, call a service
//! and render; nothing here touches the store or Docker directly.

pub mod api;
pub mod assets;
pub mod pages;

use crate::services::SharedServices;
use axum::Router;

/// State every handler receives.
#[derive(Clone)]
pub struct AppState {
    pub services: SharedServices,
}

/// The whole HTTP application for the API/dashboard listener.
pub fn router(services: SharedServices) -> Router {
    let state = AppState { services };
    pages::router().merge(api::router(state.clone())).with_state(state)
}
