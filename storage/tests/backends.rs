#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The same checks on every backend: memory, sled, and PostgreSQL (a real
//! server: `scripts/test.sh` and `.ci/run` start a throwaway cluster and
//! set `QUIRE_TEST_POSTGRES_URL`; each test gets a database of its own).
//! Without that variable the PostgreSQL case is skipped, loudly.

use std::sync::Arc;

use quire_storage::{
    Backend, MemoryBackend, PgBackend, PgConfig, SecretKey, SledBackend, SledConfig, StorageError,
    Store, Table,
};
use serde_json::json;

/// A fresh, empty database on the test cluster; its URL.
fn fresh_database(url: &str) -> String {
    let name = format!("quire_t_{}", uuid_hex());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .expect("the test cluster answers");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
    });
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
    format!("{base}/{name}")
}

fn uuid_hex() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Each backend, fresh: (name, backend).
fn backends() -> Vec<(&'static str, Arc<dyn Backend>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sled = SledBackend::open(&SledConfig {
        path: dir.path().join("db"),
        cache_bytes: 8 << 20,
        durability: quire_storage::Durability::FlushEachWrite,
    })
    .unwrap();
    let mut out: Vec<(&'static str, Arc<dyn Backend>, Option<tempfile::TempDir>)> = vec![
        ("memory", Arc::new(MemoryBackend::new()), None),
        ("sled", Arc::new(sled), Some(dir)),
    ];
    match std::env::var("QUIRE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let pg = PgBackend::open(&PgConfig::new(fresh_database(&url))).expect("PostgreSQL opens");
            out.push(("postgres", Arc::new(pg), None));
        }
        _ => eprintln!("WARNING: QUIRE_TEST_POSTGRES_URL is not set: the PostgreSQL backend is not tested here (scripts/test.sh sets it)"),
    }
    out
}

fn put(b: &dyn Backend, t: Table, k: &[u8], v: &[u8]) {
    b.write(&mut |tx| tx.put(t, k, v)).unwrap();
}

fn keys(b: &dyn Backend, prefix: &[u8], after: Option<&[u8]>, rev: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut visit = |k: &[u8], _v: &[u8]| {
        out.push(k.to_vec());
        Ok(true)
    };
    if rev {
        b.scan_rev(Table::Kv, prefix, after, &mut visit).unwrap();
    } else {
        b.scan(Table::Kv, prefix, after, &mut visit).unwrap();
    }
    out
}

#[test]
fn ordered_keys_prefix_scans_and_pages_agree_on_every_backend() {
    for (name, b, _keep) in backends() {
        let b = b.as_ref();
        // Bytes that sort differently as signed or as text: 0x00, 0x7f,
        // 0x80, 0xff, and a prefix of all 0xff.
        for k in [
            &b"a\x00"[..],
            b"a\x7f",
            b"a\x80",
            b"a\xff",
            b"a",
            b"b",
            b"\xff\xff",
            b"\xff\xff\x01",
        ] {
            put(b, Table::Kv, k, b"v");
        }
        assert_eq!(
            keys(b, b"a", None, false),
            [&b"a"[..], b"a\x00", b"a\x7f", b"a\x80", b"a\xff"],
            "{name}"
        );
        assert_eq!(
            keys(b, b"a", Some(b"a\x7f"), false),
            [&b"a\x80"[..], b"a\xff"],
            "{name}"
        );
        assert_eq!(
            keys(b, b"a", None, true),
            [&b"a\xff"[..], b"a\x80", b"a\x7f", b"a\x00", b"a"],
            "{name}"
        );
        assert_eq!(
            keys(b, b"a", Some(b"a\x80"), true),
            [&b"a\x7f"[..], b"a\x00", b"a"],
            "{name}"
        );
        assert_eq!(
            keys(b, b"\xff\xff", None, false).len(),
            2,
            "{name}: a prefix of 0xff bytes"
        );
        assert_eq!(keys(b, b"\xff\xff", None, true).len(), 2, "{name}");
        // More than one page (the PostgreSQL backend reads 256 at a time).
        b.write(&mut |tx| {
            for i in 0..700u32 {
                tx.put(Table::Kv, format!("p/{i:05}").as_bytes(), &i.to_be_bytes())?;
            }
            Ok(())
        })
        .unwrap();
        let all = keys(b, b"p/", None, false);
        assert_eq!(all.len(), 700, "{name}");
        assert!(all.windows(2).all(|w| w[0] < w[1]), "{name}: in order");
        let back = keys(b, b"p/", None, true);
        assert_eq!(back.len(), 700, "{name}");
        assert_eq!(back[0], b"p/00699", "{name}");
        // A visitor that stops.
        let mut n = 0;
        b.scan(Table::Kv, b"p/", None, &mut |_, _| {
            n += 1;
            Ok(n < 300)
        })
        .unwrap();
        assert_eq!(n, 300, "{name}");
        // Tables are apart.
        assert_eq!(b.get(Table::Docs, b"a").unwrap(), None, "{name}");
        assert!(b.size_bytes() > 0, "{name}");
    }
}

#[test]
fn a_failed_write_changes_nothing_and_a_write_sees_its_own_changes() {
    for (name, b, _keep) in backends() {
        let b = b.as_ref();
        put(b, Table::Kv, b"k", b"1");
        let r = b.write(&mut |tx| {
            assert_eq!(tx.get(Table::Kv, b"k")?, Some(b"1".to_vec()));
            tx.put(Table::Kv, b"k", b"2")?;
            assert_eq!(
                tx.get(Table::Kv, b"k")?,
                Some(b"2".to_vec()),
                "reads its own write"
            );
            tx.put(Table::Docs, b"d", b"x")?;
            assert_eq!(tx.remove(Table::Docs, b"d")?, Some(b"x".to_vec()));
            tx.put(Table::Docs, b"d2", b"y")?;
            Err(StorageError::Invalid {
                what: "test",
                reason: "stop".into(),
            })
        });
        assert!(r.is_err(), "{name}");
        assert_eq!(
            b.get(Table::Kv, b"k").unwrap(),
            Some(b"1".to_vec()),
            "{name}: rolled back"
        );
        assert_eq!(
            b.get(Table::Docs, b"d2").unwrap(),
            None,
            "{name}: rolled back"
        );
    }
}

#[test]
fn concurrent_read_modify_writes_never_lose_an_update() {
    for (name, b, _keep) in backends() {
        put(b.as_ref(), Table::Kv, b"n", &0u64.to_be_bytes());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        b.write(&mut |tx| {
                            let v = tx.get(Table::Kv, b"n")?.unwrap();
                            let n = u64::from_be_bytes(v.try_into().unwrap());
                            tx.put(Table::Kv, b"n", &(n + 1).to_be_bytes())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let v = b.get(Table::Kv, b"n").unwrap().unwrap();
        assert_eq!(u64::from_be_bytes(v.try_into().unwrap()), 100, "{name}");
    }
}

#[test]
fn the_store_keeps_its_rules_on_every_backend() {
    for (name, b, _keep) in backends() {
        let s = Store::with_backend(b, SecretKey::random().unwrap()).unwrap();
        let (a, c) = (
            s.create_workspace("a").unwrap(),
            s.create_workspace("c").unwrap(),
        );
        // Workspace isolation: the same id in another workspace is another thing.
        s.kv_set(&a.id, "k", &json!({"x": 1})).unwrap();
        assert_eq!(s.kv_get(&c.id, "k").unwrap(), None, "{name}");
        s.insert_rows(&a.id, "tasks", &[json!({"id": "t1", "n": 1})])
            .unwrap();
        assert!(
            s.query_rows(&c.id, "tasks", &Default::default())
                .unwrap()
                .is_empty(),
            "{name}"
        );
        // Versioned compare-and-set: a write based on an old version is refused.
        let doc = s
            .put_doc(
                &a.id,
                serde_json::from_value(json!({"id": "d", "title": "T"})).unwrap(),
            )
            .unwrap();
        let mut edit = doc.clone();
        edit.title = "T2".into();
        s.put_doc_if(&a.id, edit.clone(), Some(doc.updated_ms))
            .unwrap();
        edit.title = "lost?".into();
        let stale = s.put_doc_if(&a.id, edit, Some(doc.updated_ms));
        assert!(
            matches!(stale, Err(StorageError::Stale { .. })),
            "{name}: {stale:?}"
        );
        assert_eq!(
            s.get_doc(&a.id, "d").unwrap().unwrap().title,
            "T2",
            "{name}"
        );
        // Secrets are encrypted with the operator's key, readable back.
        s.put_secret(&a.id, "TOKEN", "s3cret-value", &["example.com".into()])
            .unwrap();
        assert_eq!(
            s.get_secret(&a.id, "TOKEN").unwrap().unwrap().value,
            "s3cret-value",
            "{name}"
        );
        assert!(s.get_secret(&c.id, "TOKEN").unwrap().is_none(), "{name}");
        // Ids are unique and ordered.
        let (x, y) = (s.new_id().unwrap(), s.new_id().unwrap());
        assert!(x < y, "{name}");
    }
}
