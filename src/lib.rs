//! Archivist: a mailing-list archive with full-text search and weekly topic digests.
//!
//! See ARCHITECTURE.md for the bird's-eye view. The binary (`src/main.rs`) parses arguments and
//! calls into [`cli`]; everything below `cli` takes the clock and the configuration as values.

pub mod cli;
pub mod config;
pub mod dedup;
pub mod digest;
pub mod html;
pub mod index;
pub mod indexer;
pub mod ingest;
pub mod message;
pub mod quote;
pub mod sample;
pub mod search;
pub mod store;
pub mod thread;
pub mod web;
