//! quire-web: the axum HTTP API, WebSocket live runs, auth, the scheduler loop and the browser app. Not built yet: it lands with the server issue.
