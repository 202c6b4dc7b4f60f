//! Text analysis: tantivy's `en_stem` pipeline with a memo in front of the stemmer. Snowball
//! costs about a microsecond a word and was a third of indexing time; message text repeats its
//! words, so remembering stems makes it nearly free without changing a single token.

use std::collections::HashMap;
use std::sync::Arc;

use tantivy::tokenizer::{
    Language, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
    Token, TokenFilter, TokenStream, Tokenizer,
};
use tantivy::Index;

/// Name of the stemmed analyzer in the schema; must be registered on every opened index.
pub(crate) const STEMMED: &str = "archivist_en_stem";
/// Plain lowercase words: the stemmed pipeline minus the stemmer.
pub(crate) const PLAIN: &str = "archivist_plain";
/// Adjacent pairs of stemmed words, for two-word phrases without reading positions.
pub(crate) const PAIRS: &str = "archivist_en_pairs";

/// Stems remembered per thread; when full, the memo starts over, which bounds memory at a few
/// megabytes per thread.
const MEMO_CAPACITY: usize = 50_000;

/// The longest word indexed, in bytes. tantivy's built-in analyzers drop words of 40 bytes
/// and more, which drops every full git commit id (40 hex digits), a common search on
/// development lists; 64 keeps SHA-256 ids too. Longer runs of letters and digits are mostly
/// encoded data.
pub(crate) const MAX_WORD_BYTES: usize = 64;

/// Drops words longer than [`MAX_WORD_BYTES`] (the filter keeps lengths below its limit).
fn remove_long() -> RemoveLongFilter {
    RemoveLongFilter::limit(MAX_WORD_BYTES + 1)
}

/// `en_stem` (simple tokenizer, long-token removal, lowercasing, English Snowball) with
/// longer words kept (see [`MAX_WORD_BYTES`]) and the stemmer memoised.
pub(crate) fn stemmed_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(remove_long())
        .filter(LowerCaser)
        .filter(MemoStemmer { initials: None })
        .build()
}

/// The stemmed analyzer for cutting snippets: only words starting with one of `initials` (the
/// first letters of the highlighted stems) are stemmed, since English stemming keeps a word's
/// first letter and no other word can match. Most words of a text are thus left alone.
pub(crate) fn snippet_analyzer(initials: Vec<char>) -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(remove_long())
        .filter(LowerCaser)
        .filter(MemoStemmer {
            initials: Some(initials.into()),
        })
        .build()
}

/// The stemmed words of a text, each pair of neighbours as one token (`"alloc candid"`):
/// a two-word phrase is then one term, found without decoding a single position. Words
/// with a gap between them (a dropped over-long word) make no pair, as they make no phrase.
pub(crate) fn pairs_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(remove_long())
        .filter(LowerCaser)
        .filter(MemoStemmer { initials: None })
        .filter(Pairs)
        .build()
}

/// Joins two words into the term [`pairs_analyzer`] makes of them. Words are runs of
/// letters and digits, so the space never occurs inside one.
pub(crate) fn pair_term(first: &str, second: &str) -> String {
    let mut pair = String::with_capacity(first.len() + 1 + second.len());
    pair.push_str(first);
    pair.push(' ');
    pair.push_str(second);
    pair
}

/// Lowercase words, unstemmed, so names and words of other languages match as written.
pub(crate) fn plain_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(remove_long())
        .filter(LowerCaser)
        .build()
}

/// Makes the custom analyzers known to an index (tokenizers are not stored in the index).
pub(crate) fn register(index: &Index) {
    index.tokenizers().register(STEMMED, stemmed_analyzer());
    index.tokenizers().register(PLAIN, plain_analyzer());
    index.tokenizers().register(PAIRS, pairs_analyzer());
}

/// The filter of [`pairs_analyzer`].
#[derive(Clone)]
pub(crate) struct Pairs;

impl TokenFilter for Pairs {
    type Tokenizer<T: Tokenizer> = PairFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> PairFilter<T> {
        PairFilter { inner: tokenizer }
    }
}

#[derive(Clone)]
pub(crate) struct PairFilter<T> {
    inner: T,
}

impl<T: Tokenizer> Tokenizer for PairFilter<T> {
    type TokenStream<'a> = PairStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        PairStream {
            tail: self.inner.token_stream(text),
            prev: None,
            token: Token::default(),
        }
    }
}

pub(crate) struct PairStream<T> {
    tail: T,
    /// The previous word: its text, position and start offset.
    prev: Option<(String, usize, usize)>,
    token: Token,
}

impl<T: TokenStream> TokenStream for PairStream<T> {
    fn advance(&mut self) -> bool {
        while self.tail.advance() {
            let t = self.tail.token();
            let paired = match &self.prev {
                Some((text, position, from)) if position + 1 == t.position => {
                    self.token.text.clear();
                    self.token.text.push_str(text);
                    self.token.text.push(' ');
                    self.token.text.push_str(&t.text);
                    self.token.position = *position;
                    self.token.offset_from = *from;
                    self.token.offset_to = t.offset_to;
                    true
                }
                _ => false,
            };
            match &mut self.prev {
                Some((text, position, from)) => {
                    text.clone_from(&t.text);
                    *position = t.position;
                    *from = t.offset_from;
                }
                None => self.prev = Some((t.text.clone(), t.position, t.offset_from)),
            }
            if paired {
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// The filter; see the module docs.
#[derive(Clone)]
pub(crate) struct MemoStemmer {
    /// When set, only words starting with one of these are stemmed.
    initials: Option<Arc<[char]>>,
}

impl TokenFilter for MemoStemmer {
    type Tokenizer<T: Tokenizer> = MemoStemFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> MemoStemFilter<T> {
        MemoStemFilter {
            inner: tokenizer,
            initials: self.initials,
        }
    }
}

thread_local! {
    /// The stems this thread has seen, shared by every analyzer on the thread (an indexing
    /// thread analyses the same text for a field and for its word pairs); no lock, since
    /// threads never share it. Created on first use: most threads never stem a word.
    static MEMO: std::cell::RefCell<Option<Box<MemoInner>>> = const { std::cell::RefCell::new(None) };
}

struct MemoInner {
    stems: HashMap<String, String>,
    /// tantivy's own English stemmer, fed one word at a time.
    stemmer: TextAnalyzer,
}

/// Stems `word` in place, through this thread's memo.
fn stem_into(word: &mut String) {
    // Snowball leaves words of one or two letters alone (and any two bytes are at most two
    // letters), so those skip the memo.
    if word.len() <= 2 {
        return;
    }
    MEMO.with(|cell| {
        let mut slot = cell.borrow_mut();
        let memo = slot.get_or_insert_with(|| {
            Box::new(MemoInner {
                stems: HashMap::new(),
                stemmer: TextAnalyzer::builder(RawTokenizer::default())
                    .filter(Stemmer::new(Language::English))
                    .build(),
            })
        });
        memo.stem_into(word);
    });
}

impl MemoInner {
    fn stem_into(&mut self, word: &mut String) {
        if let Some(stem) = self.stems.get(word.as_str()) {
            word.clone_from(stem);
            return;
        }
        let mut stream = self.stemmer.token_stream(word);
        let stem = if stream.advance() {
            stream.token().text.clone()
        } else {
            word.clone()
        };
        drop(stream);
        if self.stems.len() >= MEMO_CAPACITY {
            self.stems.clear();
        }
        self.stems
            .insert(std::mem::replace(word, stem.clone()), stem);
    }
}

#[derive(Clone)]
pub(crate) struct MemoStemFilter<T> {
    inner: T,
    initials: Option<Arc<[char]>>,
}

impl<T: Tokenizer> Tokenizer for MemoStemFilter<T> {
    type TokenStream<'a> = MemoStemStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        MemoStemStream {
            tail: self.inner.token_stream(text),
            initials: self.initials.as_deref(),
        }
    }
}

pub(crate) struct MemoStemStream<'a, T> {
    tail: T,
    initials: Option<&'a [char]>,
}

impl<T: TokenStream> TokenStream for MemoStemStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let text = &mut self.tail.token_mut().text;
        let wanted = match self.initials {
            None => true,
            Some(initials) => text.chars().next().is_some_and(|c| initials.contains(&c)),
        };
        if wanted {
            stem_into(text);
        }
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(mut analyzer: TextAnalyzer, text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut out = Vec::new();
        let mut stream = analyzer.token_stream(text);
        while stream.advance() {
            let t = stream.token();
            out.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
        }
        out
    }

    #[test]
    fn same_tokens_as_en_stem_with_longer_words() {
        // tantivy's `en_stem` with our word length limit.
        let reference = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(MAX_WORD_BYTES + 1))
            .filter(LowerCaser)
            .filter(Stemmer::new(Language::English))
            .build();
        let long = "x".repeat(MAX_WORD_BYTES + 1);
        let texts = [
            "Upgrading the upgraded upgrades; dogs are the bests!",
            "Die Größe der Datenbank wächst. Привет, мир! 東京 a be is us as",
            &format!("short {long} words running runs ran"),
            "",
        ];
        let mut memo = stemmed_analyzer();
        for text in texts {
            // Twice through one analyzer: the second pass is served from the memo.
            for _ in 0..2 {
                let want = tokens(reference.clone(), text);
                let mut got = Vec::new();
                let mut stream = memo.token_stream(text);
                while stream.advance() {
                    let t = stream.token();
                    got.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
                }
                assert_eq!(got, want, "{text}");
            }
        }
        assert_eq!(tokens(stemmed_analyzer(), "upgrading")[0].0, "upgrad");
        // A git commit id and a SHA-256 are words; one byte more is not.
        let sha1 = "7358f12d852964d9209492e337d33b8880234b74";
        let sha256 = "a".repeat(MAX_WORD_BYTES);
        let text = format!("fixes {sha1} {sha256} {long}");
        for (analyzer, first) in [(stemmed_analyzer(), "fix"), (plain_analyzer(), "fixes")] {
            let got: Vec<String> = tokens(analyzer, &text).into_iter().map(|t| t.0).collect();
            assert_eq!(got, [first, sha1, sha256.as_str()]);
        }
        let partial: Vec<String> = tokens(snippet_analyzer(vec!['u']), "Upgrading running units")
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(partial, ["upgrad", "running", "unit"]);
    }

    #[test]
    fn pairs_join_neighbours_only() {
        let long = "x".repeat(MAX_WORD_BYTES + 1);
        let cases: &[(&str, &[&str])] = &[
            (
                "Allocation candidates, please!",
                &["alloc candid", "candid pleas"],
            ),
            ("one", &[]),
            ("", &[]),
            // The dropped long word leaves a gap: no pair across it.
            (&format!("before {long} after it"), &["after it"]),
            ("Größe der Datenbank", &["größe der", "der datenbank"]),
        ];
        for (text, want) in cases {
            let got: Vec<String> = tokens(pairs_analyzer(), text)
                .into_iter()
                .map(|t| t.0)
                .collect();
            assert_eq!(got, *want, "{text}");
        }
        assert_eq!(pair_term("alloc", "candid"), "alloc candid");
    }
}
