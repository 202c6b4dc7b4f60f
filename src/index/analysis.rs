//! Text analysis: tantivy's `en_stem` pipeline with a memo in front of the stemmer. Snowball
//! costs about a microsecond a word and was a third of indexing time; message text repeats its
//! words, so remembering stems makes it nearly free without changing a single token.
//!
//! Words are runs of letters and digits, as with tantivy's `SimpleTokenizer`, except in
//! Chinese, Japanese and Korean text ([`is_cjk`]), which does not separate its words with
//! spaces: a run of those characters is indexed as its overlapping pairs of characters
//! (`東京都` as `東京`, `京都`), so any word of two characters or more inside it is found as
//! the phrase of its pairs, as Lucene's CJK analyzer does.

use std::collections::HashMap;
use std::iter::Peekable;
use std::str::CharIndices;
use std::sync::Arc;

use tantivy::tokenizer::{
    Language, LowerCaser, RawTokenizer, RemoveLongFilter, Stemmer, TextAnalyzer, Token,
    TokenFilter, TokenStream, Tokenizer,
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
    TextAnalyzer::builder(WordTokenizer)
        .filter(remove_long())
        .filter(LowerCaser)
        .filter(MemoStemmer { initials: None })
        .build()
}

/// The stemmed analyzer for cutting snippets: only words starting with one of `initials` (the
/// first letters of the highlighted stems) are stemmed, since English stemming keeps a word's
/// first letter and no other word can match. Most words of a text are thus left alone.
pub(crate) fn snippet_analyzer(initials: Vec<char>) -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer)
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
    TextAnalyzer::builder(WordTokenizer)
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
    TextAnalyzer::builder(WordTokenizer)
        .filter(remove_long())
        .filter(LowerCaser)
        .build()
}

/// Chinese, Japanese and Korean letters: Han ideographs (with their extensions and
/// compatibility forms, and `々` `〆` `〇`), hiragana, katakana (half-width too) and hangul.
/// Callers check `is_alphanumeric` first: marks and punctuation in these blocks are no
/// letters.
fn is_cjk(c: char) -> bool {
    matches!(
        c as u32,
        0x1100..=0x11FF
            | 0x3005..=0x3007
            | 0x3040..=0x30FF
            | 0x3130..=0x318F
            | 0x31F0..=0x31FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA960..=0xA97F
            | 0xAC00..=0xD7FF
            | 0xF900..=0xFAFF
            | 0xFF66..=0xFFDC
            | 0x20000..=0x3FFFF
    )
}

/// Whether `word` is a single CJK letter, which [`WordTokenizer`] makes only of a letter
/// standing alone, never of one inside a run.
pub(crate) fn lone_cjk(word: &str) -> bool {
    let mut chars = word.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if !c.is_ascii() && c.is_alphanumeric() && is_cjk(c))
}

/// Splits text into words (see the module docs): runs of letters and digits, and the
/// overlapping character pairs of Chinese, Japanese and Korean runs (a lone such character
/// is a word of its own). Offsets are byte offsets; each word takes the next position.
#[derive(Clone, Copy, Default)]
pub(crate) struct WordTokenizer;

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream<'a> {
        WordStream {
            text,
            chars: text.char_indices().peekable(),
            pair_from: None,
            token: Token::default(),
        }
    }
}

pub(crate) struct WordStream<'a> {
    text: &'a str,
    chars: Peekable<CharIndices<'a>>,
    /// Inside a CJK run: where the last pair's second character starts, which begins the
    /// next pair if the run goes on.
    pair_from: Option<usize>,
    token: Token,
}

impl WordStream<'_> {
    /// The next character if it is a CJK letter: consumed, with its byte range.
    fn next_cjk(&mut self) -> Option<(usize, usize)> {
        let &(at, c) = self.chars.peek()?;
        if c.is_ascii() || !c.is_alphanumeric() || !is_cjk(c) {
            return None;
        }
        self.chars.next();
        Some((at, at + c.len_utf8()))
    }

    fn emit(&mut self, from: usize, to: usize) -> bool {
        self.token.text.clear();
        self.token.text.push_str(&self.text[from..to]);
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.position = self.token.position.wrapping_add(1);
        true
    }
}

impl TokenStream for WordStream<'_> {
    fn advance(&mut self) -> bool {
        if let Some(from) = self.pair_from.take() {
            if let Some((at, to)) = self.next_cjk() {
                self.pair_from = Some(at);
                return self.emit(from, to);
            }
        }
        while let Some((from, c)) = self.chars.next() {
            if !c.is_alphanumeric() {
                continue;
            }
            if !c.is_ascii() && is_cjk(c) {
                return match self.next_cjk() {
                    Some((at, to)) => {
                        self.pair_from = Some(at);
                        self.emit(from, to)
                    }
                    None => self.emit(from, from + c.len_utf8()),
                };
            }
            let mut to = from + c.len_utf8();
            while let Some(&(at, c)) = self.chars.peek() {
                if !c.is_alphanumeric() || (!c.is_ascii() && is_cjk(c)) {
                    break;
                }
                self.chars.next();
                to = at + c.len_utf8();
            }
            return self.emit(from, to);
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
    use tantivy::tokenizer::SimpleTokenizer;

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
    fn cjk_runs_are_character_pairs() {
        let words = |text: &str| -> Vec<(String, usize, usize, usize)> {
            tokens(TextAnalyzer::from(WordTokenizer), text)
        };
        let t = |w: &str, p, f, to| (w.to_string(), p, f, to);
        // Each pair takes the next position, so a word of the run is the phrase of its pairs.
        assert_eq!(words("東京都"), [t("東京", 0, 0, 6), t("京都", 1, 3, 9)]);
        // Latin words around and inside a run are words of their own; a lone CJK letter is
        // a word; punctuation (`、` `・`) and spaces end a run.
        assert_eq!(
            words("Linuxカーネル、の v6・x 本"),
            [
                t("Linux", 0, 0, 5),
                t("カー", 1, 5, 11),
                t("ーネ", 2, 8, 14),
                t("ネル", 3, 11, 17),
                t("の", 4, 20, 23),
                t("v6", 5, 24, 26),
                t("x", 6, 29, 30),
                t("本", 7, 31, 34),
            ]
        );
        assert_eq!(
            words("검색할 수"),
            [t("검색", 0, 0, 6), t("색할", 1, 3, 9), t("수", 2, 10, 13)]
        );
        // Everything else splits exactly as tantivy's simple tokenizer does.
        let reference = TextAnalyzer::from(SimpleTokenizer::default());
        for text in [
            "Die Größe der Datenbank wächst. Привет, мир! a_b x2y ٣٤ – done",
            "",
            "   ",
            "trailing word",
        ] {
            assert_eq!(words(text), tokens(reference.clone(), text), "{text}");
        }
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
