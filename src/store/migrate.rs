//! Schema migrations: the `schema/NNNN_*.sql` files, embedded, applied in order once each and
//! tracked by `PRAGMA user_version`. Append-only: a landed migration is never edited.

use anyhow::{bail, Context, Result};
use rusqlite::Connection;

use crate::thread;

/// Every migration, in order. Index + 1 is the `user_version` after applying it.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../../schema/0001_init.sql")),
    (
        "0002_index_log",
        include_str!("../../schema/0002_index_log.sql"),
    ),
    ("0003_digest", include_str!("../../schema/0003_digest.sql")),
    ("0004_copies", include_str!("../../schema/0004_copies.sql")),
    (
        "0005_subject_fallback",
        include_str!("../../schema/0005_subject_fallback.sql"),
    ),
];

/// Fills `subject_activity` from the stored messages (the key is computed by the program).
fn fill_subject_activity(conn: &Connection) -> Result<()> {
    let mut read = conn.prepare("SELECT id, subject, date FROM messages WHERE date IS NOT NULL")?;
    let mut insert = conn.prepare(
        "INSERT OR IGNORE INTO subject_activity (subject_key, date, message) VALUES (?1, ?2, ?3)",
    )?;
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let (id, subject, date): (i64, String, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let (key, _) = thread::subject_key(&subject);
        if !key.is_empty() {
            insert.execute(rusqlite::params![key, date, id])?;
        }
    }
    Ok(())
}

/// Applies the migrations the database has not seen yet, each in its own transaction.
pub fn apply(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        bail!(
            "the archive has schema version {current}, newer than this archivist knows ({known}); upgrade archivist"
        );
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migration {name} failed"))?;
        if *name == "0005_subject_fallback" {
            fill_subject_activity(&tx).with_context(|| format!("migration {name} failed"))?;
        }
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
