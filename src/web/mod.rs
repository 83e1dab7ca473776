//! HTTP: the JSON API under `/api` (and, later, the dashboard pages). Handlers extract input, call a service
//! and render; nothing here touches the store or Docker directly.

pub mod api;

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
    api::router(state.clone()).with_state(state)
}
