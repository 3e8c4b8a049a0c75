//! API token records. The store keeps only a hash of each token's secret;
//! checking a presented token (and comparing in constant time) is the
//! server's job.

use crate::backend::Table;
use crate::error::Result;
use crate::keys::check_name;
use crate::model::{TokenRecord, WebhookRecord, WorkspaceId};
use crate::store::{to_vec, Store};

impl Store {
    /// Store a token record (insert or replace by id).
    pub fn put_token(&self, t: &TokenRecord) -> Result<()> {
        check_name("token id", &t.id)?;
        let v = to_vec(t)?;
        self.b
            .write(&mut |tx| tx.put(Table::Tokens, t.id.as_bytes(), &v))
    }

    /// The token record with this id.
    pub fn get_token(&self, id: &str) -> Result<Option<TokenRecord>> {
        check_name("token id", id)?;
        self.get_json(Table::Tokens, id.as_bytes(), "token")
    }

    /// Token records of one workspace, or the server-admin tokens for
    /// `None`.
    pub fn list_tokens(&self, ws: Option<&WorkspaceId>) -> Result<Vec<TokenRecord>> {
        let mut out = Vec::new();
        self.scan_json(Table::Tokens, b"", "token", |_, t: TokenRecord| {
            if t.workspace.as_ref() == ws {
                out.push(t);
            }
            true
        })?;
        Ok(out)
    }

    /// Delete a token record; whether it existed.
    pub fn delete_token(&self, id: &str) -> Result<bool> {
        check_name("token id", id)?;
        self.remove_key(Table::Tokens, id.as_bytes())
    }
}

impl Store {
    /// Store a webhook record (insert or replace by id).
    pub fn put_webhook(&self, h: &WebhookRecord) -> Result<()> {
        check_name("webhook id", &h.id)?;
        let v = to_vec(h)?;
        self.b
            .write(&mut |tx| tx.put(Table::Webhooks, h.id.as_bytes(), &v))
    }

    /// The webhook with this id.
    pub fn get_webhook(&self, id: &str) -> Result<Option<WebhookRecord>> {
        check_name("webhook id", id)?;
        self.get_json(Table::Webhooks, id.as_bytes(), "webhook")
    }

    /// Webhooks of one block.
    pub fn list_webhooks(&self, ws: &WorkspaceId, block: &str) -> Result<Vec<WebhookRecord>> {
        let mut out = Vec::new();
        self.scan_json(Table::Webhooks, b"", "webhook", |_, h: WebhookRecord| {
            if h.workspace == *ws && h.block == block {
                out.push(h);
            }
            true
        })?;
        Ok(out)
    }

    /// Delete a webhook; whether it existed.
    pub fn delete_webhook(&self, id: &str) -> Result<bool> {
        check_name("webhook id", id)?;
        self.remove_key(Table::Webhooks, id.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, ws: Option<WorkspaceId>) -> TokenRecord {
        TokenRecord {
            id: id.into(),
            workspace: ws,
            role: "viewer".into(),
            label: String::new(),
            secret_sha256: "00".repeat(32),
            created_ms: 1,
        }
    }

    #[test]
    fn tokens_are_listed_per_workspace_and_deleted() -> Result<()> {
        let s = crate::testing::store()?;
        let a = s.create_workspace("a")?.id;
        let b = s.create_workspace("b")?.id;
        s.put_token(&token("t1", Some(a)))?;
        s.put_token(&token("t2", Some(b)))?;
        s.put_token(&token("t3", None))?;
        let ids = |v: Vec<TokenRecord>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(s.list_tokens(Some(&a))?), ["t1"]);
        assert_eq!(ids(s.list_tokens(None)?), ["t3"]);
        assert!(s.delete_token("t1")?);
        assert!(!s.delete_token("t1")?);
        assert_eq!(s.get_token("t1")?, None);
        assert_eq!(s.get_token("t2")?.map(|t| t.workspace), Some(Some(b)));
        Ok(())
    }
}
