//! Date ranges answered from the per-segment [`DocTable`]s: two binary searches in the
//! segment's documents sorted by date, then only the matching ones set in a bitset, instead of
//! tantivy's range query decoding the date column block by block. Matches
//! exactly what a range over the date column matches: documents with a date inside
//! `[start, end)`, never documents without one.

use std::fmt;
use std::sync::Arc;

use tantivy::query::{
    BitSetDocSet, ConstScorer, EnableScoring, Explanation, Query, Scorer, Weight,
};
use tantivy::{BitSet, DocId, DocSet as _, Score, SegmentReader, TantivyError};

use super::table::Tables;

#[derive(Clone)]
pub(crate) struct DateRange {
    pub tables: Arc<Tables>,
    /// Inclusive lower bound, Unix seconds.
    pub start: Option<i64>,
    /// Exclusive upper bound.
    pub end: Option<i64>,
}

impl fmt::Debug for DateRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DateRange({:?}..{:?})", self.start, self.end)
    }
}

impl Query for DateRange {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for DateRange {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let table = self.tables.segment(reader)?;
        let (start, end) = (self.start.unwrap_or(i64::MIN), self.end);
        let mut docs = BitSet::with_max_value(reader.max_doc());
        for &doc in table.dated_within(start, end) {
            docs.insert(doc);
        }
        Ok(Box::new(ConstScorer::new(BitSetDocSet::from(docs), boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.doc() > doc || scorer.seek(doc) != doc {
            return Err(TantivyError::InvalidArgument(format!(
                "Document #({doc}) does not match"
            )));
        }
        Ok(Explanation::new("DateRange", 1.0))
    }
}
