//! Per-segment tables of what the pass over matches reads for every match: date, year, facet
//! ordinal and thread. They are copied out of the fast-field columns once per segment
//! (segments never change), so that pass indexes plain arrays instead of decoding columns, and
//! threads get dense per-segment numbers, so collapsing folds into a table instead of a map.
//! About 18 bytes per document.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use anyhow::Context;
use tantivy::columnar::{Column, StrColumn};
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

/// What the pass over matches reads of one document, in one 16-byte row, so that a match
/// costs one cache line, not one per column: sparse matches are spread over the whole table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    /// Unix seconds shifted left by 16, over the year slot (see [`Row::year_slot`]).
    date_year: i64,
    /// Ordinal in the segment's facet column, or [`NONE`].
    pub facet: u32,
    /// Dense thread number within the segment: an index into [`DocTable::threads`].
    pub thread_slot: u32,
}

/// The year slot of a row without a date.
const NO_YEAR: u16 = u16::MAX;

impl Row {
    fn new(date: Option<i64>, year_slot: usize, facet: u32, thread_slot: u32) -> Row {
        // Dates come from validated headers (years 0..=9999), far inside 48 bits, and a
        // segment spans at most 20,001 year slots.
        let (date, year) = match date {
            Some(d) => (d, u16::try_from(year_slot).unwrap_or(NO_YEAR - 1)),
            None => (0, NO_YEAR),
        };
        Row {
            date_year: (date << 16) | i64::from(year),
            facet,
            thread_slot,
        }
    }

    /// Unix seconds; 0 for a document without a date.
    #[inline]
    pub(crate) fn date(self) -> i64 {
        self.date_year >> 16
    }

    /// Slot of the document's year (see [`DocTable::years`]), or `None` without a date.
    #[inline]
    pub(crate) fn year_slot(self) -> Option<usize> {
        let y = (self.date_year & 0xffff) as u16;
        (y != NO_YEAR).then_some(usize::from(y))
    }
}

pub(crate) struct DocTable {
    /// By document number.
    pub rows: Vec<Row>,
    /// Number of terms in the facet column.
    pub facet_terms: usize,
    /// The archive's thread number of each slot (0 for documents without one).
    pub threads: Vec<u64>,
    /// The first year a slot stands for; slots are consecutive years.
    pub first_year: i64,
    /// Number of year slots.
    pub year_count: usize,
    /// The newest date in the segment.
    pub max_date: i64,
    /// Message ids, for tie-breaks.
    pub ids: SegmentIds,
    /// The dated documents in date order (then document order), built on the first date range
    /// that meets the segment.
    by_date: OnceLock<Vec<DocId>>,
    /// Each document's recency factor, for the newest date it was computed against. An array
    /// read per scored match: computing the factor instead (`exp2`) is slower on large results.
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
            rows: Vec::with_capacity(n),
            facet_terms: facets.as_ref().map_or(0, |c| c.num_terms()),
            threads: Vec::new(),
            first_year: years.first,
            year_count: years.starts.len() + 1,
            max_date: date.as_ref().map_or(0, |d| d.max_value()),
            ids: SegmentIds::new(reader)?,
            by_date: OnceLock::new(),
            recency: Mutex::new(None),
        };
        let mut slot_of: HashMap<u64, u32> = HashMap::new();
        let mut dates = vec![None; CHUNK];
        let mut threads = vec![None; CHUNK];
        let mut ords = vec![None; CHUNK];
        let mut start = 0usize;
        while start < n {
            let len = CHUNK.min(n - start);
            let chunk: Vec<DocId> = (start..start + len).map(|d| d as DocId).collect();
            dates[..len].fill(None);
            if let Some(c) = &date {
                c.first_vals(&chunk, &mut dates[..len]);
            }
            threads[..len].fill(None);
            if let Some(c) = &thread {
                c.first_vals(&chunk, &mut threads[..len]);
            }
            ords[..len].fill(None);
            if let Some(c) = &facets {
                c.ords().first_vals(&chunk, &mut ords[..len]);
            }
            for i in 0..len {
                let th = threads[i].unwrap_or(0);
                let next = t.threads.len() as u32;
                let slot = *slot_of.entry(th).or_insert(next);
                if slot == next {
                    t.threads.push(th);
                }
                let facet = match ords[i] {
                    Some(o) if o < u64::from(NONE) => o as u32,
                    _ => NONE,
                };
                let date = dates[i];
                let year = date.map_or(0, |d| years.slot(d));
                t.rows.push(Row::new(date, year, facet, slot));
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
                    self.rows
                        .iter()
                        .map(|r| recency_factor(newest, r.date()))
                        .collect(),
                );
                *cached = Some((newest, Arc::clone(&factors)));
                factors
            }
        }
    }

    /// The documents dated within `[start, end)` (no end: unbounded), in date order. Documents
    /// without a date never match.
    pub(crate) fn dated_within(&self, start: i64, end: Option<i64>) -> &[DocId] {
        let order = self.by_date.get_or_init(|| {
            let mut docs: Vec<DocId> = (0..self.rows.len() as DocId)
                .filter(|&d| self.rows[d as usize].year_slot().is_some())
                .collect();
            docs.sort_by_key(|&d| self.rows[d as usize].date());
            docs
        });
        let date = |d: &DocId| self.rows[*d as usize].date();
        let lo = order.partition_point(|d| date(d) < start);
        let hi = end.map_or(order.len(), |e| order.partition_point(|d| date(d) < e));
        order.get(lo..hi).unwrap_or(&[])
    }

    /// The archive's thread number of a document (0 if it has none).
    pub(crate) fn thread(&self, doc: DocId) -> u64 {
        self.rows
            .get(doc as usize)
            .and_then(|r| self.threads.get(r.thread_slot as usize))
            .copied()
            .unwrap_or(0)
    }

    /// (year, count) for the slots with a count, oldest first.
    pub(crate) fn years(&self, counts: &[u32]) -> Vec<(i64, u32)> {
        (self.first_year..)
            .zip(counts.iter().copied())
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// One segment's message ids: the 8-byte prefix column orders almost every pair, and the
/// full id (from the string column's dictionary) settles the rest.
pub(crate) struct SegmentIds {
    key: Option<Column<u64>>,
    full: Option<StrColumn>,
}

impl SegmentIds {
    pub(crate) fn new(reader: &SegmentReader) -> tantivy::Result<SegmentIds> {
        let ff = reader.fast_fields();
        Ok(SegmentIds {
            key: ff.column_opt(col::MSGID_KEY)?,
            full: ff.str(col::MSGID)?,
        })
    }

    pub(crate) fn key(&self, doc: DocId) -> u64 {
        self.key.as_ref().and_then(|k| k.first(doc)).unwrap_or(0)
    }

    pub(crate) fn full(&self, doc: DocId) -> anyhow::Result<String> {
        let mut s = String::new();
        if let Some(col) = &self.full {
            if let Some(ord) = col.ords().first(doc) {
                col.ord_to_str(ord, &mut s)
                    .context("cannot read a message id")?;
            }
        }
        Ok(s)
    }

    /// Message-id order of two documents of the segment. Ids that cannot be read (a damaged
    /// index) fall back to document order, so the result stays deterministic.
    pub(crate) fn cmp(&self, a: DocId, b: DocId) -> Ordering {
        match self.key(a).cmp(&self.key(b)) {
            Ordering::Equal => match (self.full(a), self.full(b)) {
                (Ok(x), Ok(y)) => x.cmp(&y).then(a.cmp(&b)),
                _ => a.cmp(&b),
            },
            other => other,
        }
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
    fn rows_keep_date_year_facet_and_thread() {
        let cases: &[(Option<i64>, usize)] = &[
            (Some(1_700_000_000), 3),
            (Some(0), 0),
            // Before 1970 (year 1 is the earliest a validated header gives).
            (Some(-62_135_596_800), 20_000),
            (Some(253_402_300_799), 1),
            (None, 0),
        ];
        for &(date, year) in cases {
            let row = Row::new(date, year, 7, NONE);
            assert_eq!(row.date(), date.unwrap_or(0), "{date:?}");
            assert_eq!(row.year_slot(), date.map(|_| year), "{date:?}");
            assert_eq!((row.facet, row.thread_slot), (7, NONE));
        }
    }

    #[test]
    fn dated_within_matches_what_a_scan_of_the_dates_matches() {
        let dates = [
            Some(300),
            None,
            Some(100),
            Some(300),
            Some(-50),
            Some(200),
            None,
            Some(100),
            Some(0),
        ];
        let table = DocTable {
            rows: dates.iter().map(|&d| Row::new(d, 0, NONE, 0)).collect(),
            facet_terms: 0,
            threads: vec![0],
            first_year: 1970,
            year_count: 1,
            max_date: 300,
            ids: SegmentIds {
                key: None,
                full: None,
            },
            by_date: OnceLock::new(),
            recency: Mutex::new(None),
        };
        let ranges = [
            (i64::MIN, None),
            (i64::MIN, Some(0)),
            (0, Some(1)),
            (100, Some(300)),
            (100, Some(301)),
            (101, Some(200)),
            (300, None),
            (301, None),
            (200, Some(100)),
        ];
        for (start, end) in ranges {
            let mut found = table.dated_within(start, end).to_vec();
            found.sort_unstable();
            let scanned: Vec<DocId> = (0..dates.len() as DocId)
                .filter(|&d| {
                    dates[d as usize].is_some_and(|t| t >= start && end.is_none_or(|e| t < e))
                })
                .collect();
            assert_eq!(found, scanned, "{start}..{end:?}");
        }
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
