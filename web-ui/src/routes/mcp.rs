//! The MCP endpoint of a workspace: `…/workspaces/{ws}/mcp`, the
//! streamable HTTP transport of `quire_mcp`. Each request's bearer token
//! is checked here (viewer or higher of this workspace; another
//! workspace's token gets 404) and the caller it makes is handed to the
//! MCP server in the request's extensions; a viewer may look but not run
//! code. A session belongs to the token and workspace that opened it:
//! another token, or the same session id under another workspace's URL,
//! gets 404. Requests that carry an `Origin` header are refused by the
//! transport (a web page cannot drive an agent's session).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use quire_storage::WorkspaceId;

use super::blocking;
use crate::auth::{Principal, Role};
use crate::error::ApiResult;
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/workspaces/{ws}/mcp", any(mcp))
}

/// The header that names an MCP session.
const SESSION: &str = "mcp-session-id";

/// Sessions remembered at most (the oldest is forgotten first; a
/// forgotten session's requests get 404 and its client starts another).
const MAX_SESSIONS: usize = 10_000;

/// The token id and workspace that opened a session.
type Owner = (String, WorkspaceId);

/// Which token opened each MCP session, and in which workspace; and the
/// sessions in the order they opened (the oldest is forgotten first).
#[derive(Debug, Default)]
pub struct McpSessions(Mutex<(HashMap<String, Owner>, VecDeque<String>)>);

impl McpSessions {
    fn owner(&self, id: &str) -> Option<Owner> {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.0.get(id).cloned()
    }

    fn open(&self, id: String, owner: Owner) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *s;
        if map.insert(id.clone(), owner).is_none() {
            order.push_back(id);
        }
        while map.len() > MAX_SESSIONS {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
    }

    fn close(&self, id: &str) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.0.remove(id);
        s.1.retain(|x| x != id);
    }
}

async fn mcp(
    State(s): State<AppState>,
    who: Principal,
    Path(ws): Path<String>,
    mut req: Request,
) -> ApiResult<Response> {
    let token = who.token_id.clone();
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
    let owner = (token, caller.workspace.id);
    let session = req
        .headers()
        .get(SESSION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if let Some(id) = &session {
        if s.mcp_sessions.owner(id).as_ref() != Some(&owner) {
            return Ok((StatusCode::NOT_FOUND, "no such MCP session").into_response());
        }
    }
    let deleting = req.method() == Method::DELETE;
    req.extensions_mut().insert(caller);
    let resp = s.mcp.handle(req).await;
    match (
        &session,
        resp.headers().get(SESSION).and_then(|v| v.to_str().ok()),
    ) {
        (None, Some(opened)) => s.mcp_sessions.open(opened.to_string(), owner),
        (Some(id), _) if deleting && resp.status().is_success() => s.mcp_sessions.close(id),
        _ => {}
    }
    Ok(resp.map(axum::body::Body::new))
}
