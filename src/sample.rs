//! stub
use std::path::{Path, PathBuf};
pub struct SampleSpec {
    pub seed: u64,
    pub weeks: u32,
    pub messages_per_week: u32,
    pub start: i64,
}
impl SampleSpec {
    pub fn demo() -> Self {
        SampleSpec {
            seed: 1,
            weeks: 8,
            messages_per_week: 75,
            start: 0,
        }
    }
}
pub struct SampleFile {
    pub path: PathBuf,
    pub list: String,
    pub messages: usize,
}
pub fn write_sample(_dir: &Path, _spec: &SampleSpec) -> anyhow::Result<Vec<SampleFile>> {
    Ok(vec![])
}
