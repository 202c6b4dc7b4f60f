//! The read-only archive connections that request handlers borrow on actix's blocking
//! threads. Bounded: a request that finds every connection lent out waits for one instead of
//! opening more (each has its own page cache). Pages whose cost is bounded by one message are
//! built on the event loop instead, each event-loop thread with a connection of its own
//! ([`Pool::with_local`]), as is the cache's `data_version` pragma.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::store::Store;

use super::WebError;

/// A bounded set of read-only connections to `archive.sqlite3`, opened on demand.
pub struct Pool {
    path: PathBuf,
    max: usize,
    idle: Mutex<Idle>,
    returned: Condvar,
}

struct Idle {
    stores: Vec<Store>,
    /// Connections in existence, idle or lent out.
    open: usize,
}

/// A borrowed connection, given back when dropped.
pub struct Lease<'a> {
    pool: &'a Pool,
    store: Option<Store>,
    /// An empty in-memory archive (see [`Pool::get`]): dropped, not given back.
    ephemeral: bool,
}

impl Pool {
    /// A pool over `<data_dir>/archive.sqlite3` of at most `max` connections.
    pub fn new(data_dir: &Path, max: usize) -> Pool {
        Pool {
            path: data_dir.join("archive.sqlite3"),
            max: max.max(1),
            idle: Mutex::new(Idle {
                stores: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether there is an archive to open yet (the server starts before the first import).
    pub fn archive_exists(&self) -> bool {
        self.path.exists()
    }

    /// Borrows a connection, opening one if fewer than `max` exist, else waiting for one.
    /// Blocks: call it on a blocking thread.
    pub fn get(&self) -> Result<Lease<'_>, WebError> {
        if !self.archive_exists() {
            // Nothing imported yet: an empty archive of its own, never pooled, answers (every
            // list and search is then empty, not missing).
            return Ok(Lease {
                pool: self,
                store: Some(Self::empty()?),
                ephemeral: true,
            });
        }
        let mut idle = self.lock();
        loop {
            if let Some(store) = idle.stores.pop() {
                return Ok(Lease {
                    pool: self,
                    store: Some(store),
                    ephemeral: false,
                });
            }
            if idle.open < self.max {
                idle.open += 1;
                drop(idle);
                return match self.open() {
                    Ok(store) => Ok(Lease {
                        pool: self,
                        store: Some(store),
                        ephemeral: false,
                    }),
                    Err(err) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(err)
                    }
                };
            }
            idle = self
                .returned
                .wait(idle)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Runs `f` with this thread's own connection to the pool's archive, opened on first use
    /// and kept for the thread's life; never waits for the pool.
    pub fn with_local<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, WebError>,
    ) -> Result<T, WebError> {
        thread_local! {
            static LOCAL: RefCell<Option<(PathBuf, Store)>> = const { RefCell::new(None) };
        }
        // Taken out while `f` runs, so the thread-local is never borrowed across it. A thread
        // may serve several archives (tests do): it keeps the latest one's connection.
        if !self.archive_exists() {
            return f(&Self::empty()?);
        }
        let (path, store) = match LOCAL.with(|cell| cell.borrow_mut().take()) {
            Some((path, store)) if path == self.path => (path, store),
            _ => (self.path.clone(), self.open()?),
        };
        let out = f(&store);
        LOCAL.with(|cell| *cell.borrow_mut() = Some((path, store)));
        out
    }

    fn open(&self) -> Result<Store, WebError> {
        Ok(Store::open_read_only(&self.path)?)
    }

    /// An empty archive in memory, for a server started before the first import.
    fn empty() -> Result<Store, WebError> {
        Ok(Store::open(Path::new(":memory:"))?)
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = Store;

    fn deref(&self) -> &Store {
        // Present from construction until drop.
        self.store.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take().filter(|_| !self.ephemeral) {
            self.pool.lock().stores.push(store);
            self.pool.returned.notify_one();
        }
    }
}
