//! The MCP endpoint of a workspace: `…/workspaces/{ws}/mcp`, the
//! streamable HTTP transport of `quire_mcp`. Each request's bearer token
//! is checked here (viewer or higher of this workspace; another
//! workspace's token gets 404) and the caller it makes is handed to the
//! MCP server in the request's extensions; a viewer may look but not run
//! code. Requests that carry an `Origin` header are refused by the
//! transport (a web page cannot drive an agent's session).

use axum::extract::{Path, Request, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;

use super::blocking;
use crate::auth::{Principal, Role};
use crate::error::ApiResult;
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/workspaces/{ws}/mcp", any(mcp))
}

async fn mcp(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    mut req: Request,
) -> ApiResult<Response> {
    s.auth.take(&who.token_id)?;
    let store = s.store.clone();
    let caller = blocking(move || {
        let w = who.enter(&store, &ws, Role::Viewer)?;
        let can_run = who.check(&w, Role::Editor, &w.name).is_ok();
        Ok(quire_mcp::Caller {
            workspace: w,
            can_run,
        })
    })
    .await?;
    req.extensions_mut().insert(caller);
    Ok(s.mcp.handle(req).await.map(axum::body::Body::new))
}
