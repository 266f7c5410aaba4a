//! The WordPiece vocabulary learner: byte-pair-style merges over word counts
//! with `##` continuation pieces, as the `tokenizers` crate's
//! `WordPieceTrainer`, but deterministic.
//!
//! `tokenizers` 0.23 assigns the ids of the `##` pieces in hash-map order,
//! and its merge queue breaks count ties by id, so the same corpus gives a
//! different vocabulary from one run to the next (huggingface/tokenizers
//! #1794). Here every tie is broken by the pieces' text: the same corpus
//! and settings always give the same vocabulary, whatever the process.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

/// Prefix of a piece that continues a word.
pub const CONTINUATION: &str = "##";

/// Learns a vocabulary from `words` (each distinct pre-tokenized word and its
/// count): `specials` first (ids in order), then the alphabet (the
/// `limit_alphabet` most frequent characters, ties by character, in character
/// order), then the `##` form of every alphabet character that occurs inside
/// a word (in character order), then one piece per merge until the
/// vocabulary holds `vocab_size` pieces or no pair occurs `min_frequency`
/// times. Each merge joins the most frequent adjacent pair (ties: the
/// smallest `(left, right)` text). Words with a character outside the
/// alphabet are left out (WordPiece encodes them as `[UNK]`).
pub fn learn_vocab(
    words: &BTreeMap<String, u64>,
    specials: &[&str],
    vocab_size: usize,
    min_frequency: u64,
    limit_alphabet: Option<usize>,
) -> Vec<String> {
    let mut char_counts: BTreeMap<char, u64> = BTreeMap::new();
    for (w, &n) in words {
        for c in w.chars() {
            *char_counts.entry(c).or_default() += n;
        }
    }
    let mut by_count: Vec<(char, u64)> = char_counts.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(limit) = limit_alphabet {
        by_count.truncate(limit);
    }
    let alphabet: BTreeSet<char> = by_count.into_iter().map(|(c, _)| c).collect();

    let mut vocab = Vocab::default();
    for s in specials {
        vocab.id(s);
    }
    for c in &alphabet {
        vocab.id(&c.to_string());
    }
    let inner: BTreeSet<char> = words
        .keys()
        .filter(|w| w.chars().all(|c| alphabet.contains(&c)))
        .flat_map(|w| w.chars().skip(1))
        .collect();
    for c in &inner {
        vocab.id(&format!("{CONTINUATION}{c}"));
    }

    // Words as piece ids, with their counts.
    let mut corpus: Vec<(Vec<u32>, u64)> = words
        .iter()
        .filter(|(w, _)| !w.is_empty() && w.chars().all(|c| alphabet.contains(&c)))
        .map(|(w, &n)| {
            let pieces = w
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i == 0 {
                        vocab.id(&c.to_string())
                    } else {
                        vocab.id(&format!("{CONTINUATION}{c}"))
                    }
                })
                .collect();
            (pieces, n)
        })
        .collect();

    let mut pairs = PairIndex::default();
    for (i, (pieces, n)) in corpus.iter().enumerate() {
        pairs.add_word(i, pieces, *n as i64);
    }
    let mut queue: BinaryHeap<Candidate> = pairs
        .counts
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(&p, &n)| Candidate::new(n as u64, p, &vocab))
        .collect();

    while vocab.len() < vocab_size {
        let Some(top) = queue.pop() else { break };
        let current = pairs.counts.get(&top.pair).copied().unwrap_or(0);
        if current != top.count as i64 {
            continue; // stale entry: the pair's count changed since
        }
        if top.count < min_frequency.max(1) {
            break;
        }
        let (a, b) = top.pair;
        let merged = vocab.id(&join(&vocab.pieces[a as usize], &vocab.pieces[b as usize]));
        // In word order (a BTreeSet); copied because the loop updates the index.
        let touched: Vec<usize> = pairs
            .words
            .get(&top.pair)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let mut changed = BTreeSet::new();
        for i in touched {
            let (pieces, n) = &mut corpus[i];
            let Some(next) = merge_pair(pieces, top.pair, merged) else {
                continue;
            };
            changed.extend(pairs.remove_word(pieces, *n as i64));
            changed.extend(pairs.add_word(i, &next, *n as i64));
            *pieces = next;
        }
        for p in changed {
            let n = pairs.counts.get(&p).copied().unwrap_or(0);
            if n > 0 {
                queue.push(Candidate::new(n as u64, p, &vocab));
            }
        }
    }
    vocab.pieces
}

/// `left` followed by `right` without its continuation prefix.
fn join(left: &str, right: &str) -> String {
    format!(
        "{left}{}",
        right.strip_prefix(CONTINUATION).unwrap_or(right)
    )
}

/// `pieces` with every non-overlapping `pair` (left to right) replaced by
/// `merged`; `None` when the pair does not occur.
fn merge_pair(pieces: &[u32], pair: (u32, u32), merged: u32) -> Option<Vec<u32>> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut i = 0;
    let mut hit = false;
    while i < pieces.len() {
        if i + 1 < pieces.len() && (pieces[i], pieces[i + 1]) == pair {
            out.push(merged);
            i += 2;
            hit = true;
        } else {
            out.push(pieces[i]);
            i += 1;
        }
    }
    hit.then_some(out)
}

#[derive(Default)]
struct Vocab {
    pieces: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// The id of `piece`, added at the end when new.
    fn id(&mut self, piece: &str) -> u32 {
        if let Some(&i) = self.ids.get(piece) {
            return i;
        }
        let i = self.pieces.len() as u32;
        self.pieces.push(piece.to_string());
        self.ids.insert(piece.to_string(), i);
        i
    }

    fn len(&self) -> usize {
        self.pieces.len()
    }
}

/// Weighted counts of adjacent pairs and the words they occur in.
#[derive(Default)]
struct PairIndex {
    counts: HashMap<(u32, u32), i64>,
    words: HashMap<(u32, u32), BTreeSet<usize>>,
}

impl PairIndex {
    /// Adds word `i`'s pairs with weight `n`; returns the pairs touched.
    fn add_word(&mut self, i: usize, pieces: &[u32], n: i64) -> Vec<(u32, u32)> {
        let pairs: Vec<(u32, u32)> = pieces.windows(2).map(|w| (w[0], w[1])).collect();
        for &p in &pairs {
            *self.counts.entry(p).or_default() += n;
            self.words.entry(p).or_default().insert(i);
        }
        pairs
    }

    /// Removes a word's pairs (weight `n`); returns the pairs touched. The
    /// word stays listed under them (a later merge finds nothing there).
    fn remove_word(&mut self, pieces: &[u32], n: i64) -> Vec<(u32, u32)> {
        let pairs: Vec<(u32, u32)> = pieces.windows(2).map(|w| (w[0], w[1])).collect();
        for &p in &pairs {
            *self.counts.entry(p).or_default() -= n;
        }
        pairs
    }
}

/// A queued merge: highest count first, then the smallest `(left, right)` text.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    count: u64,
    text: Reverse<(String, String)>,
    pair: (u32, u32),
}

impl Candidate {
    fn new(count: u64, pair: (u32, u32), vocab: &Vocab) -> Self {
        Self {
            count,
            text: Reverse((
                vocab.pieces[pair.0 as usize].clone(),
                vocab.pieces[pair.1 as usize].clone(),
            )),
            pair,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(words: &[(&str, u64)]) -> BTreeMap<String, u64> {
        words.iter().map(|(w, n)| (w.to_string(), *n)).collect()
    }

    #[test]
    fn merges_the_most_frequent_pairs_with_continuation_pieces() {
        let words = counts(&[
            ("hug", 10),
            ("pug", 5),
            ("pun", 12),
            ("bun", 4),
            ("hugs", 5),
        ]);
        let v = learn_vocab(&words, &["[UNK]"], 100, 1, None);
        // specials, alphabet, ## pieces in character order.
        assert_eq!(
            &v[..10],
            ["[UNK]", "b", "g", "h", "n", "p", "s", "u", "##g", "##n"]
        );
        assert_eq!(&v[10..12], ["##s", "##u"]);
        // "##u ##g" (20) and "##u ##n" (16) are the most frequent pairs.
        assert_eq!(v[12], "##ug");
        assert_eq!(v[13], "##un");
        assert!(v.contains(&"hug".to_string()) && v.contains(&"pun".to_string()));
    }

    #[test]
    fn ties_are_broken_by_text_and_the_result_never_varies() {
        let words = counts(&[("ab", 3), ("cd", 3), ("ef", 3), ("ba", 3)]);
        let v = learn_vocab(&words, &[], 100, 1, None);
        let merges: Vec<&str> = v.iter().skip(6 + 4).map(String::as_str).collect();
        assert_eq!(merges, ["ab", "ba", "cd", "ef"]);
        for _ in 0..5 {
            assert_eq!(learn_vocab(&words, &[], 100, 1, None), v);
        }
    }

    #[test]
    fn respects_size_min_frequency_and_the_alphabet_limit() {
        let words = counts(&[("aaaa", 5), ("bb", 1), ("xyz", 1)]);
        let v = learn_vocab(&words, &["[PAD]"], 100, 2, Some(2));
        assert!(!v.iter().any(|p| p.contains('x')), "{v:?}");
        assert!(!v.contains(&"bb".to_string()), "below min frequency: {v:?}");
        // ##a ##a (10), then ##aa ##a before a ##aa (5 each: '#' < 'a').
        let n = v.len();
        assert_eq!(&v[n - 3..], ["##aa", "##aaa", "aaaa"]);
        // The alphabet and its ## pieces always fit; no merge beyond the size.
        let small = learn_vocab(&words, &["[PAD]"], 4, 1, None);
        assert_eq!(small.len(), 1 + 5 + 4, "{small:?}");
        assert!(learn_vocab(&BTreeMap::new(), &["[PAD]"], 10, 1, None) == ["[PAD]"]);
    }
}
