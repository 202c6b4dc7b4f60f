//! Per-segment tables of what the pass over matches reads for every match: date, year, facet
//! ordinal and thread. They are copied out of the fast-field columns once per segment
//! (segments never change), so that pass indexes plain arrays instead of decoding columns, and
//! threads get dense per-segment numbers, so collapsing folds into a table instead of a map.
//! About 18 bytes per document.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tantivy::columnar::Column;
use tantivy::index::SegmentId;
use tantivy::{DocId, SegmentReader};

use super::schema::{col, year_of};

/// Relevance is multiplied by `1 + RECENCY_WEIGHT * 2^(-age / half-life)`, age counted back
/// from the newest message in the index (not the wall clock, so results do not drift): a mild
/// push that mostly orders near-equal scores.
const RECENCY_WEIGHT: f32 = 0.1;
const RECENCY_HALF_LIFE_DAYS: f32 = 365.0;

fn recency_factor(newest: i64, date: i64) -> f32 {
    let age_days = (newest.saturating_sub(date)).max(0) as f32 / 86_400.0;
    1.0 + RECENCY_WEIGHT * (-age_days / RECENCY_HALF_LIFE_DAYS).exp2()
}

/// Marks a document without a value (a year slot or facet ordinal).
pub(crate) const NONE: u32 = u32::MAX;

/// Documents read per column call while building a table.
const CHUNK: usize = 1024;

pub(crate) struct DocTable {
    /// Unix seconds; 0 for a document without a date.
    pub dates: Vec<i64>,
    /// Slot of the document's year (see [`DocTable::years`]), or [`NONE`].
    pub year_slots: Vec<u32>,
    /// Ordinal in the segment's facet column, or [`NONE`].
    pub facets: Vec<u32>,
    /// Number of terms in the facet column.
    pub facet_terms: usize,
    /// Dense thread number within the segment: an index into `threads`.
    pub thread_slots: Vec<u32>,
    /// The archive's thread number of each slot (0 for documents without one).
    pub threads: Vec<u64>,
    /// The first year a slot stands for; slots are consecutive years.
    pub first_year: i64,
    /// Number of year slots.
    pub year_count: usize,
    /// The newest date in the segment.
    pub max_date: i64,
    /// Each document's recency factor, for the newest date it was computed against.
    recency: Mutex<Option<(i64, Arc<Vec<f32>>)>>,
}

impl DocTable {
    pub(crate) fn build(reader: &SegmentReader) -> tantivy::Result<DocTable> {
        let ff = reader.fast_fields();
        let n = reader.max_doc() as usize;
        let date: Option<Column<i64>> = ff.column_opt(col::DATE)?;
        let thread: Option<Column<u64>> = ff.column_opt(col::THREAD)?;
        let facets = ff.str(col::FACETS)?;
        let years = Years::new(date.as_ref());

        let mut t = DocTable {
            dates: Vec::with_capacity(n),
            year_slots: Vec::with_capacity(n),
            facets: Vec::with_capacity(n),
            facet_terms: facets.as_ref().map_or(0, |c| c.num_terms()),
            thread_slots: Vec::with_capacity(n),
            threads: Vec::new(),
            first_year: years.first,
            year_count: years.starts.len() + 1,
            max_date: date.as_ref().map_or(0, |d| d.max_value()),
            recency: Mutex::new(None),
        };
        let mut slot_of: HashMap<u64, u32> = HashMap::new();
        let mut buf = vec![None; CHUNK];
        let mut ords = vec![None; CHUNK];
        let mut start = 0usize;
        while start < n {
            let len = CHUNK.min(n - start);
            let chunk: Vec<DocId> = (start..start + len).map(|d| d as DocId).collect();

            buf[..len].fill(None);
            if let Some(c) = &date {
                c.first_vals(&chunk, &mut buf[..len]);
            }
            for d in &buf[..len] {
                t.dates.push(d.unwrap_or(0));
                t.year_slots.push(d.map_or(NONE, |d| years.slot(d) as u32));
            }

            let mut threads = vec![None; len];
            if let Some(c) = &thread {
                c.first_vals(&chunk, &mut threads);
            }
            for th in threads {
                let th = th.unwrap_or(0);
                let next = t.threads.len() as u32;
                let slot = *slot_of.entry(th).or_insert(next);
                if slot == next {
                    t.threads.push(th);
                }
                t.thread_slots.push(slot);
            }

            ords[..len].fill(None);
            if let Some(c) = &facets {
                c.ords().first_vals(&chunk, &mut ords[..len]);
            }
            for o in &ords[..len] {
                t.facets.push(match o {
                    Some(o) if *o < NONE as u64 => *o as u32,
                    _ => NONE,
                });
            }
            start += len;
        }
        Ok(t)
    }

    /// Each document's recency factor against `newest` (the newest date in the index), computed
    /// once per value of `newest`.
    pub(crate) fn recency(&self, newest: i64) -> Arc<Vec<f32>> {
        let mut cached = self.recency.lock().unwrap_or_else(PoisonError::into_inner);
        match &*cached {
            Some((n, factors)) if *n == newest => Arc::clone(factors),
            _ => {
                let factors: Arc<Vec<f32>> = Arc::new(
                    self.dates
                        .iter()
                        .map(|&d| recency_factor(newest, d))
                        .collect(),
                );
                *cached = Some((newest, Arc::clone(&factors)));
                factors
            }
        }
    }

    /// (year, count) for the slots with a count, oldest first.
    pub(crate) fn years(&self, counts: &[u32]) -> Vec<(i64, u32)> {
        (self.first_year..)
            .zip(counts.iter().copied())
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// The calendar years (UTC) a segment's dates span.
struct Years {
    first: i64,
    /// Start of each year after the first, in Unix seconds.
    starts: Vec<i64>,
}

impl Years {
    fn new(date: Option<&Column<i64>>) -> Years {
        let Some(c) = date else {
            return Years {
                first: 0,
                starts: Vec::new(),
            };
        };
        let (first, last) = (year_of(c.min_value()), year_of(c.max_value()));
        // Years come from validated dates, so the span is at most a few thousand.
        let starts = (first + 1..=last.min(first + 20_000))
            .filter_map(year_start)
            .collect();
        Years { first, starts }
    }

    fn slot(&self, date: i64) -> usize {
        self.starts.partition_point(|&s| s <= date)
    }
}

fn year_start(year: i64) -> Option<i64> {
    let y = i32::try_from(year).ok()?;
    let date = time::Date::from_calendar_date(y, time::Month::January, 1).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

/// The tables of one index generation, built when a search first meets a segment.
#[derive(Default)]
pub(crate) struct Tables(RwLock<HashMap<SegmentId, Arc<DocTable>>>);

impl Tables {
    /// The table of one segment.
    pub(crate) fn segment(&self, reader: &SegmentReader) -> tantivy::Result<Arc<DocTable>> {
        if let Some(t) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&reader.segment_id())
        {
            return Ok(Arc::clone(t));
        }
        let t = Arc::new(DocTable::build(reader)?);
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(reader.segment_id(), Arc::clone(&t));
        Ok(t)
    }

    /// The table of every segment of `searcher`, by segment ordinal.
    pub(crate) fn of(&self, searcher: &tantivy::Searcher) -> tantivy::Result<Vec<Arc<DocTable>>> {
        let readers = searcher.segment_readers();
        {
            let known = self.0.read().unwrap_or_else(PoisonError::into_inner);
            let found: Option<Vec<_>> = readers
                .iter()
                .map(|r| known.get(&r.segment_id()).cloned())
                .collect();
            if let Some(found) = found {
                return Ok(found);
            }
        }
        // Forget merged-away segments, then fill in the new ones.
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| readers.iter().any(|r| r.segment_id() == *id));
        readers.iter().map(|r| self.segment(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recency_is_mild_and_monotonic() {
        let now = 1_700_000_000;
        let day = 86_400;
        assert!((recency_factor(now, now) - 1.1).abs() < 1e-6);
        assert!((recency_factor(now, now - 365 * day) - 1.05).abs() < 1e-3);
        assert!(recency_factor(now, now - 10 * day) > recency_factor(now, now - 20 * day));
        assert!(recency_factor(now, 0) >= 1.0);
        // Messages "from the future" count as newest, not more.
        assert_eq!(recency_factor(now, now + day), recency_factor(now, now));
    }

    #[test]
    fn year_slots_follow_calendar_years() {
        let y = |year: i32| {
            time::Date::from_calendar_date(year, time::Month::January, 1)
                .expect("a valid date")
                .midnight()
                .assume_utc()
                .unix_timestamp()
        };
        let years = Years {
            first: 2021,
            starts: vec![y(2022), y(2023)],
        };
        assert_eq!(years.slot(y(2021)), 0);
        assert_eq!(years.slot(y(2022) - 1), 0);
        assert_eq!(years.slot(y(2022)), 1);
        assert_eq!(years.slot(y(2023) + 5), 2);
        assert_eq!(year_start(2024), Some(y(2024)));
    }
}
