//! Where the index lives on disk: `<base>/vN/` holds numbered generations (`g00000001/`, ...)
//! and a `CURRENT` file naming the live one, replaced atomically by rename when a rebuild ends.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use tantivy::index::IndexSettings;
use tantivy::Index;

use super::analysis;
use super::schema::{self, Fields, SCHEMA_DIR};

const CURRENT: &str = "CURRENT";
const GEN_PREFIX: &str = "g";

/// `<base>/v2` (see [`SCHEMA_DIR`]).
pub(crate) fn schema_dir(base: &Path) -> PathBuf {
    base.join(SCHEMA_DIR)
}

/// Directory of one generation.
pub(crate) fn gen_dir(base: &Path, generation: &str) -> PathBuf {
    schema_dir(base).join(generation)
}

fn gen_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(GEN_PREFIX)?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn gen_name(n: u64) -> String {
    format!("{GEN_PREFIX}{n:08}")
}

/// The live generation, or `None` when no index was ever created.
pub(crate) fn read_current(base: &Path) -> Result<Option<String>> {
    let path = schema_dir(base).join(CURRENT);
    match fs::read_to_string(&path) {
        Ok(s) => {
            let name = s.trim();
            if gen_number(name).is_none() {
                anyhow::bail!("{} names no generation: {name:?}", path.display());
            }
            Ok(Some(name.to_string()))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Existing generation directories, oldest first.
fn generations(base: &Path) -> Result<Vec<(u64, String)>> {
    let dir = schema_dir(base);
    let mut found = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if let Some(name) = entry.file_name().to_str() {
            if let Some(n) = gen_number(name) {
                found.push((n, name.to_string()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Creates an empty directory for a generation newer than any existing one.
pub(crate) fn new_generation(base: &Path) -> Result<(String, PathBuf)> {
    let dir = schema_dir(base);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut n = generations(base)?.last().map_or(1, |(n, _)| n + 1);
    loop {
        let name = gen_name(n);
        let path = dir.join(&name);
        match fs::create_dir(&path) {
            Ok(()) => return Ok((name, path)),
            // Another process took this number first.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
}

/// Creates an empty index in a fresh directory.
pub(crate) fn create_index(path: &Path) -> Result<Index> {
    let (schema, _) = schema::build();
    let settings = IndexSettings {
        // Stored documents are read one by one for snippets; small blocks mean less to
        // decompress per hit (a typical message body is 1-2 KB).
        docstore_blocksize: 4096,
        ..IndexSettings::default()
    };
    let index = Index::builder()
        .schema(schema)
        .settings(settings)
        .create_in_dir(path)
        .with_context(|| format!("cannot create an index in {}", path.display()))?;
    analysis::register(&index);
    Ok(index)
}

/// Opens a generation's index; `None` when it was built with another schema.
pub(crate) fn open_index_if_current(
    base: &Path,
    generation: &str,
) -> Result<Option<(Index, Fields)>> {
    let path = gen_dir(base, generation);
    let index = Index::open_in_dir(&path)
        .with_context(|| format!("cannot open the index in {}", path.display()))?;
    analysis::register(&index);
    Ok(schema::fields_of(&index.schema()).map(|fields| (index, fields)))
}

/// Opens a generation's index, which must carry the current schema.
pub(crate) fn open_index(base: &Path, generation: &str) -> Result<(Index, Fields)> {
    open_index_if_current(base, generation)?.with_context(|| {
        format!(
            "the index in {} was built with an older schema; rebuild it (or let the indexer \
             open it, which starts it over)",
            gen_dir(base, generation).display()
        )
    })
}

/// A name for a pointer file being written, unique across processes and threads.
fn temp_pointer(base: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    schema_dir(base).join(format!("{CURRENT}.tmp-{}-{n}", std::process::id()))
}

fn write_pointer(path: &Path, generation: &str) -> Result<()> {
    let mut f =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(format!("{generation}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn sync_dir(dir: &Path) {
    // Makes the rename durable; not every platform can open a directory, and failing here
    // only weakens durability, never correctness of what readers see.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Makes `generation` the live one. The rename is atomic: a reader sees the old or the new
/// name, never a half-written file.
pub(crate) fn publish(base: &Path, generation: &str) -> Result<()> {
    let tmp = temp_pointer(base);
    write_pointer(&tmp, generation)?;
    let current = schema_dir(base).join(CURRENT);
    fs::rename(&tmp, &current).with_context(|| format!("cannot replace {}", current.display()))?;
    sync_dir(&schema_dir(base));
    Ok(())
}

/// The live generation, creating an empty index first if there is none. Safe against another
/// process doing the same: the pointer is created with a hard link, which fails if it exists.
pub(crate) fn ensure_index(base: &Path) -> Result<String> {
    if let Some(g) = read_current(base)? {
        return Ok(g);
    }
    let (generation, path) = new_generation(base)?;
    create_index(&path)?;
    let tmp = temp_pointer(base);
    write_pointer(&tmp, &generation)?;
    let current = schema_dir(base).join(CURRENT);
    let linked = fs::hard_link(&tmp, &current);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(&schema_dir(base));
            Ok(generation)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let _ = fs::remove_dir_all(&path);
            read_current(base)?.context("the index pointer vanished while it was being created")
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", current.display())),
    }
}

/// Deletes generations older than `keep_from`, and abandoned ones newer than `live` (left by
/// a rebuild that crashed). The generation just before `live` is kept by passing it as
/// `keep_from`: searchers in other processes may still be reading it until their next search.
pub(crate) fn remove_stale(base: &Path, keep_from: &str, live: &str) -> Result<()> {
    let (Some(keep_n), Some(live_n)) = (gen_number(keep_from), gen_number(live)) else {
        return Ok(());
    };
    for (n, name) in generations(base)? {
        if n < keep_n || n > live_n {
            let path = gen_dir(base, &name);
            fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove old index {}", path.display()))?;
        }
    }
    Ok(())
}

/// The number of a schema directory's name (`v2` is 2).
fn schema_version(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('v')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Deletes the directories of older schema versions under `base` (`v1` beside [`SCHEMA_DIR`]).
/// Call it once this version's index is complete: nothing of this version reads them, and
/// each holds a whole index. Newer versions and anything not named like a version stay.
pub(crate) fn remove_older_schemas(base: &Path) -> Result<()> {
    let Some(current) = schema_version(SCHEMA_DIR) else {
        return Ok(());
    };
    let entries = match fs::read_dir(base) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", base.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", base.display()))?;
        let older = entry
            .file_name()
            .to_str()
            .and_then(schema_version)
            .is_some_and(|n| n < current);
        if older && entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(entry.path()).with_context(|| {
                format!("cannot remove the older index {}", entry.path().display())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_older_schema_directories_are_removed() {
        let base = std::env::temp_dir().join(format!("archivist-schemas-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let current = schema_version(SCHEMA_DIR).expect("the schema directory is numbered");
        let older = format!("v{}", current - 1);
        let newer = format!("v{}", current + 1);
        for dir in [
            older.as_str(),
            SCHEMA_DIR,
            newer.as_str(),
            "vx",
            "v",
            "notes",
        ] {
            fs::create_dir_all(base.join(dir).join("g00000001")).expect("mkdir");
        }
        fs::write(base.join("v0"), "a file, not an index").expect("write");
        remove_older_schemas(&base).expect("cleanup");
        let mut left: Vec<String> = fs::read_dir(&base)
            .expect("list")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        left.sort();
        let mut want = vec![
            SCHEMA_DIR.to_string(),
            newer,
            "notes".into(),
            "v".into(),
            "v0".into(),
            "vx".into(),
        ];
        want.sort();
        assert_eq!(left, want);
        // Nothing there at all is fine too.
        remove_older_schemas(&base.join("missing")).expect("missing base");
        let _ = fs::remove_dir_all(&base);
        assert_eq!(schema_version("v12"), Some(12));
        assert_eq!(schema_version("v-1"), None);
        assert_eq!(schema_version("v+1"), None);
    }

    #[test]
    fn generation_names() {
        assert_eq!(gen_name(1), "g00000001");
        assert_eq!(gen_number("g00000001"), Some(1));
        for bad in ["g1", "x00000001", "g0000000a", "CURRENT", "g000000011"] {
            assert_eq!(gen_number(bad), None, "{bad}");
        }
    }
}
