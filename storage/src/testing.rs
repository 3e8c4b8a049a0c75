//! Test-only: the store the unit tests run on, chosen by
//! `QUIRE_TEST_STORAGE_BACKEND` (`memory`, the default; `sled`, in a temp
//! dir; `postgres`, a fresh database on the cluster at
//! `QUIRE_TEST_POSTGRES_URL`). `scripts/test.sh` runs this crate's unit
//! tests once per backend, so the same suite checks all three.

use std::cell::RefCell;

use crate::{Result, SecretKey, Store, StoreConfig};

thread_local! {
    /// Sled directories, removed when the test's thread ends.
    static DIRS: RefCell<Vec<tempfile::TempDir>> = const { RefCell::new(Vec::new()) };
}

/// A new, empty store on the backend under test.
pub(crate) fn store() -> Result<Store> {
    match std::env::var("QUIRE_TEST_STORAGE_BACKEND").as_deref() {
        Ok("sled") => {
            let dir = tempfile::tempdir().map_err(|e| crate::StorageError::Io {
                what: "making a temp dir",
                path: "tmp".into(),
                error: e,
            })?;
            let mut cfg = StoreConfig::new(dir.path());
            cfg.secret_key = Some(SecretKey::random()?);
            let s = Store::open(&cfg)?;
            DIRS.with(|d| d.borrow_mut().push(dir));
            Ok(s)
        }
        Ok("postgres") => {
            let url = std::env::var("QUIRE_TEST_POSTGRES_URL").map_err(|_| {
                crate::StorageError::Postgres("QUIRE_TEST_POSTGRES_URL is not set".into())
            })?;
            Store::open_postgres(
                &crate::PgConfig::new(fresh_database(&url)?),
                SecretKey::random()?,
            )
        }
        _ => Store::memory(),
    }
}

/// A fresh database on the cluster at `url`; its URL.
pub(crate) fn fresh_database(url: &str) -> Result<String> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| crate::StorageError::Postgres(e.to_string()))?;
    let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let name = format!("quire_u_{name}");
    let pg = |e: sqlx::Error| crate::StorageError::Postgres(e.to_string());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::StorageError::Postgres(e.to_string()))?;
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.map_err(pg)?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .map_err(pg)?;
        Ok::<_, crate::StorageError>(())
    })?;
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

/// Two stores on one fresh PostgreSQL database, standing for two
/// processes (each with its own pool and listener), or `None`, said
/// loudly, without `QUIRE_TEST_POSTGRES_URL` (what: what goes untested).
pub(crate) fn two_postgres_stores(what: &str) -> Option<(Store, Store)> {
    let Some(url) = std::env::var("QUIRE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("WARNING: QUIRE_TEST_POSTGRES_URL is not set: {what} is not tested here (scripts/test.sh sets it)");
        return None;
    };
    // With a server named, a failure here fails the test.
    let fail = |e: crate::StorageError| -> ! { panic!("the test database: {e}") };
    let db = fresh_database(&url).unwrap_or_else(|e| fail(e));
    let key = SecretKey::random().unwrap_or_else(|e| fail(e));
    let open = |k: SecretKey| {
        Store::open_postgres(&crate::PgConfig::new(&db), k).unwrap_or_else(|e| fail(e))
    };
    Some((open(key.clone()), open(key)))
}
