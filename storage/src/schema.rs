//! The on-disk schema version and the migration hook.
//!
//! `meta/schema_version` holds a u32 (big endian). On open: an empty
//! database is stamped with [`CURRENT`]; an older one runs each migration
//! from its version up, each in its own atomic write together with the new
//! version stamp; a newer one is refused, never guessed at.

use crate::backend::{Backend, Table, Tx};
use crate::error::{corrupt, Result, StorageError};

/// The schema version this build writes.
pub const CURRENT: u32 = 1;

const KEY: &[u8] = b"schema_version";

/// One migration: from version `from` to `from + 1`, inside one write.
pub struct Migration {
    /// The version it upgrades from.
    pub from: u32,
    /// What it changes.
    pub describe: &'static str,
    /// The change.
    pub apply: fn(&mut dyn Tx) -> Result<()>,
}

/// Every migration this build knows, in order. Version 1 is the first
/// schema, so there are none yet; add one here with each format change.
pub const MIGRATIONS: &[Migration] = &[];

fn read_version(b: &dyn Backend) -> Result<Option<u32>> {
    match b.get(Table::Meta, KEY)? {
        None => Ok(None),
        Some(v) => {
            let a: [u8; 4] = v
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("schema version", "not 4 bytes"))?;
            Ok(Some(u32::from_be_bytes(a)))
        }
    }
}

fn is_empty(b: &dyn Backend) -> Result<bool> {
    let mut empty = true;
    for t in Table::ALL {
        b.scan(t, b"", None, &mut |_, _| {
            empty = false;
            Ok(false)
        })?;
    }
    Ok(empty)
}

/// Stamp, migrate or refuse, as the module docs say.
pub(crate) fn check_and_migrate(b: &dyn Backend, migrations: &[Migration]) -> Result<()> {
    let current = migrations
        .last()
        .map_or(CURRENT, |m| m.from + 1)
        .max(CURRENT);
    let mut version = match read_version(b)? {
        Some(v) => v,
        None if is_empty(b)? => {
            b.write(&mut |tx| tx.put(Table::Meta, KEY, &current.to_be_bytes()))?;
            return Ok(());
        }
        // Data without a stamp predates versioning: version 0.
        None => 0,
    };
    if version > current {
        return Err(StorageError::SchemaTooNew {
            found: version,
            supported: current,
        });
    }
    while version < current {
        let step = migrations.iter().find(|m| m.from == version);
        let next = version + 1;
        tracing::info!(
            from = version,
            to = next,
            what = step.map_or("stamp only", |m| m.describe),
            "migrating the database"
        );
        b.write(&mut |tx| {
            if let Some(m) = step {
                (m.apply)(tx)?;
            }
            tx.put(Table::Meta, KEY, &next.to_be_bytes())
        })?;
        version = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemoryBackend;

    #[test]
    fn empty_databases_are_stamped_and_newer_ones_refused() {
        let b = MemoryBackend::new();
        check_and_migrate(&b, MIGRATIONS).unwrap();
        assert_eq!(read_version(&b).unwrap(), Some(CURRENT));
        b.write(&mut |tx| tx.put(Table::Meta, KEY, &99u32.to_be_bytes()))
            .unwrap();
        let e = check_and_migrate(&b, MIGRATIONS).unwrap_err();
        assert!(
            matches!(e, StorageError::SchemaTooNew { found: 99, .. }),
            "{e}"
        );
    }

    #[test]
    fn migrations_run_in_order_and_stamp_each_step() {
        fn add_flag(tx: &mut dyn Tx) -> Result<()> {
            tx.put(Table::Meta, b"migrated", b"yes")
        }
        let steps = [Migration {
            from: 1,
            describe: "add a flag",
            apply: add_flag,
        }];
        let b = MemoryBackend::new();
        check_and_migrate(&b, MIGRATIONS).unwrap();
        check_and_migrate(&b, &steps).unwrap();
        assert_eq!(read_version(&b).unwrap(), Some(2));
        assert_eq!(
            b.get(Table::Meta, b"migrated").unwrap(),
            Some(b"yes".to_vec())
        );
    }
}
