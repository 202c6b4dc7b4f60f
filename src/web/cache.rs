//! The in-memory cache of rendered responses, and when it goes stale. Bounded in bytes;
//! emptied when the archive changes (SQLite's `PRAGMA data_version` on a watching
//! connection) and, for responses built from the search index, when the index directory
//! changes (a commit or a rebuild), after which the searcher is reloaded at once.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::web::Bytes;

use crate::index::Searcher;
use crate::store::Store;

/// A response body with what its headers need, built once and served many times.
pub struct Rendered {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Content-Disposition`, for downloads.
    pub disposition: Option<&'static str>,
    /// The body.
    pub body: Bytes,
    /// A weak validator over the body, quoted: weak because the compression layer sends the
    /// same page gzipped or not under it, and a strong tag must differ between the two.
    pub etag: String,
    /// Unix seconds of the newest content shown, for `Last-Modified`.
    pub last_modified: Option<i64>,
}

impl Rendered {
    /// A body with its ETag computed.
    pub fn new(content_type: &'static str, body: Vec<u8>, last_modified: Option<i64>) -> Self {
        Rendered {
            content_type,
            disposition: None,
            etag: format!("W/\"{}\"", &blake3::hash(&body).to_hex()[..20]),
            body: Bytes::from(body),
            last_modified,
        }
    }
}

/// What a response depends on: the archive only, or the search index too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Pages built from SQLite alone.
    Archive,
    /// Search results: the index and SQLite.
    Search,
}

/// A snapshot of the archive's and the index's versions, as the cache sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    archive: u64,
    index: u64,
    /// Unix seconds when this server saw the archive (or, for search pages, the index) reach
    /// this version, or started watching: nothing a page shows changed after it. A page's
    /// `Last-Modified` is never earlier, so a client revalidating by date alone sees an import
    /// that changed an old page (a cross-post's new list, a list's count).
    pub changed_at: i64,
}

/// The cache.
pub struct Cache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    archive: u64,
    bytes: usize,
    entries: HashMap<String, Entry>,
    /// Keys oldest first; evicted from the front once over budget.
    order: VecDeque<String>,
}

struct Entry {
    /// Zero for archive-scoped entries; the index version for search entries.
    index: u64,
    rendered: Arc<Rendered>,
}

impl Cache {
    /// A cache of at most `budget` bytes of bodies and keys; 0 turns it off.
    pub fn new(budget: usize) -> Self {
        Cache {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The response cached under `key`, if it is still current at `stamp`.
    pub fn get(&self, key: &str, scope: Scope, stamp: Stamp) -> Option<Arc<Rendered>> {
        if self.budget == 0 {
            return None;
        }
        let mut inner = self.lock();
        inner.expire(stamp);
        if inner.archive != stamp.archive {
            return None;
        }
        let entry = inner.entries.get(key)?;
        let wanted = if scope == Scope::Search {
            stamp.index
        } else {
            0
        };
        (entry.index == wanted).then(|| Arc::clone(&entry.rendered))
    }

    /// Keeps a response built at `stamp`. A response larger than an eighth of the budget is
    /// not kept: one huge thread should not push out hundreds of pages.
    pub fn put(&self, key: String, scope: Scope, stamp: Stamp, rendered: Arc<Rendered>) {
        let size = rendered.body.len() + key.len() * 2 + 128;
        if self.budget == 0 || size > self.budget / 8 {
            return;
        }
        let mut inner = self.lock();
        inner.expire(stamp);
        if inner.archive != stamp.archive {
            // Built from an older archive than the cache now holds.
            return;
        }
        let index = if scope == Scope::Search {
            stamp.index
        } else {
            0
        };
        if let Some(old) = inner.entries.insert(key.clone(), Entry { index, rendered }) {
            inner.bytes -= old.rendered.body.len() + key.len() * 2 + 128;
        } else {
            inner.order.push_back(key);
        }
        inner.bytes += size;
        while inner.bytes > self.budget {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(old) = inner.entries.remove(&oldest) {
                inner.bytes -= old.rendered.body.len() + oldest.len() * 2 + 128;
            }
        }
    }
}

impl Inner {
    /// Empties the cache if the archive changed since its entries were built. Stamps only
    /// move forward: an older one (a request that began before the change) empties nothing.
    fn expire(&mut self, stamp: Stamp) {
        if stamp.archive > self.archive {
            self.entries.clear();
            self.order.clear();
            self.bytes = 0;
            self.archive = stamp.archive;
        }
    }
}

/// Watches the archive and the index for changes made by another process (an import).
pub struct Freshness {
    index_dir: PathBuf,
    state: Mutex<Watch>,
}

#[derive(Default)]
struct Watch {
    /// A connection of its own: `data_version` only changes between calls on one connection.
    store: Option<Store>,
    data_version: i64,
    archive: u64,
    /// When `archive` and `index` last moved (see [`Stamp::changed_at`]).
    archive_changed_at: i64,
    index_seen: Option<IndexMark>,
    index: u64,
    index_changed_at: i64,
}

/// A fingerprint of the index's commit points: every `CURRENT` pointer (replaced by a
/// rename when a rebuild publishes a generation) and every generation's `meta.json`
/// (tantivy replaces it by a rename on each commit). A rename gives a new inode, so the
/// fingerprint changes even when two commits fall in the same timestamp tick.
type IndexMark = u64;

impl Freshness {
    /// Watches the index under `index_dir`; the archive database is opened on first use.
    pub fn new(index_dir: &Path) -> Self {
        Freshness {
            index_dir: index_dir.to_path_buf(),
            state: Mutex::new(Watch::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Watch> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current stamp; `None` when there is no archive to watch (nothing is cached then).
    /// Cheap (one pragma, and a few `stat`s for the search scope), so it runs on the event
    /// loop. When the index changed, `searcher` is reloaded before the new stamp is given out,
    /// so a response built under that stamp reflects the change.
    pub fn stamp(
        &self,
        archive: &Path,
        scope: Scope,
        searcher: Option<&Searcher>,
    ) -> Option<Stamp> {
        let mut watch = self.lock();
        if watch.store.is_none() {
            if !archive.exists() {
                return None;
            }
            watch.store = Store::open_read_only(archive).ok();
        }
        let version = watch.store.as_ref()?.data_version().ok()?;
        if version != watch.data_version || watch.archive == 0 {
            watch.data_version = version;
            watch.archive += 1;
            watch.archive_changed_at = crate::digest::service::now();
        }
        if scope == Scope::Search {
            let mark = index_mark(&self.index_dir);
            if watch.index_seen != Some(mark) {
                if let Some(searcher) = searcher {
                    if let Err(err) = searcher.refresh() {
                        eprintln!("archivist serve: cannot reload the search index: {err:#}");
                    }
                }
                watch.index_seen = Some(mark);
                watch.index += 1;
                watch.index_changed_at = crate::digest::service::now();
            }
        }
        let changed_at = match scope {
            Scope::Archive => watch.archive_changed_at,
            Scope::Search => watch.archive_changed_at.max(watch.index_changed_at),
        };
        Some(Stamp {
            archive: watch.archive,
            index: watch.index,
            changed_at,
        })
    }
}

/// Fingerprints the files under `dir` (two levels down) and each directory's `meta.json`,
/// by inode, size and modification time, without knowing the index's layout.
fn index_mark(dir: &Path) -> IndexMark {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut note = |path: &Path| {
        if let Ok(m) = std::fs::metadata(path) {
            (path, m.ino(), m.len(), m.mtime(), m.mtime_nsec()).hash(&mut hasher);
        }
    };
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((path, depth)) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in read.flatten() {
            let child = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                note(&child.join("meta.json"));
                if depth < 1 {
                    stack.push((child, depth + 1));
                }
            } else {
                note(&child);
            }
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Arc<Rendered> {
        Arc::new(Rendered::new("text/plain", vec![b'x'; n], None))
    }

    fn stamp(archive: u64, index: u64) -> Stamp {
        Stamp {
            archive,
            index,
            changed_at: 0,
        }
    }

    #[test]
    fn stays_within_its_budget_dropping_the_oldest() {
        let cache = Cache::new(10_000);
        for i in 0..20 {
            cache.put(format!("/m/{i}"), Scope::Archive, stamp(1, 0), body(1_000));
        }
        let inner = cache.lock();
        assert!(inner.bytes <= 10_000, "{} bytes kept", inner.bytes);
        assert!(inner.entries.contains_key("/m/19"));
        assert!(!inner.entries.contains_key("/m/0"));
        assert_eq!(inner.entries.len(), inner.order.len());
        drop(inner);
        // Larger than an eighth of the budget: not kept at all.
        cache.put("/big".into(), Scope::Archive, stamp(1, 0), body(2_000));
        assert!(cache.get("/big", Scope::Archive, stamp(1, 0)).is_none());
        assert!(Cache::new(0)
            .get("/m/1", Scope::Archive, stamp(1, 0))
            .is_none());
    }

    #[test]
    fn a_newer_archive_or_index_misses() {
        let cache = Cache::new(1 << 20);
        cache.put("/t/a".into(), Scope::Archive, stamp(1, 5), body(10));
        cache.put("/search?q=a".into(), Scope::Search, stamp(1, 5), body(10));
        assert!(cache.get("/t/a", Scope::Archive, stamp(1, 6)).is_some());
        assert!(cache
            .get("/search?q=a", Scope::Search, stamp(1, 5))
            .is_some());
        assert!(cache
            .get("/search?q=a", Scope::Search, stamp(1, 6))
            .is_none());
        // A response built before the archive changed is not kept after it.
        assert!(cache.get("/t/a", Scope::Archive, stamp(2, 6)).is_none());
        cache.put("/t/old".into(), Scope::Archive, stamp(1, 6), body(10));
        assert!(cache.get("/t/old", Scope::Archive, stamp(2, 6)).is_none());
        assert!(cache.get("/t/old", Scope::Archive, stamp(1, 6)).is_none());
        assert_eq!(cache.lock().bytes, 0);
    }
}
