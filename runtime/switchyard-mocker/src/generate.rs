//! Deterministic text: the rule that makes every mocker instance produce the same tokens for
//! the same request.
//!
//! Each token is one word from [`TOKENS`] with a leading space. Token `i` is picked by
//! `xxh3_64_with_seed(w1 + " " + w2 + " " + w3 + " " + w4, seed)`, where `w1..w4` are the last
//! four whitespace-separated words of the context followed by the tokens generated so far.
//! Nothing else (position, request id, timing, instance) influences the choice, so a request
//! re-sent as a completion whose prompt is "context + text generated so far" continues with
//! exactly the remaining tokens: that is what mid-stream migration relies on.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// How many trailing words choose the next token.
const WINDOW: usize = 4;

/// One word of the sliding window: either from the context or a generated vocabulary word.
#[derive(Debug, Clone, Copy)]
enum Word {
    Context(usize),
    Vocab(usize),
}

/// Generates the token sequence for one request.
#[derive(Debug)]
pub struct TextGen {
    seed: u64,
    /// The context's trailing words (at most [`WINDOW`]), oldest first.
    context_tail: Vec<String>,
    window: [Word; WINDOW],
    len: usize,
    scratch: Vec<u8>,
}

impl TextGen {
    /// Starts generation after `context` with the combined seed.
    pub fn new(context: &str, seed: u64) -> Self {
        let mut tail: Vec<String> = context
            .split_whitespace()
            .rev()
            .take(WINDOW)
            .map(str::to_owned)
            .collect();
        tail.reverse();
        let mut window = [Word::Context(0); WINDOW];
        for (i, slot) in window.iter_mut().enumerate().take(tail.len()) {
            *slot = Word::Context(i);
        }
        Self {
            seed,
            len: tail.len(),
            context_tail: tail,
            window,
            scratch: Vec::with_capacity(64),
        }
    }

    /// The next token, with its leading space (e.g. `" river"`).
    pub fn next_token(&mut self) -> &'static str {
        self.scratch.clear();
        for (i, word) in self.window[..self.len].iter().enumerate() {
            if i > 0 {
                self.scratch.push(b' ');
            }
            let text = match *word {
                Word::Context(c) => self.context_tail[c].as_str(),
                Word::Vocab(v) => &TOKENS[v][1..],
            };
            self.scratch.extend_from_slice(text.as_bytes());
        }
        let pick = (xxh3_64_with_seed(&self.scratch, self.seed) % TOKENS.len() as u64) as usize;
        self.push(Word::Vocab(pick));
        TOKENS[pick]
    }

    fn push(&mut self, word: Word) {
        if self.len == WINDOW {
            self.window.rotate_left(1);
            self.window[WINDOW - 1] = word;
        } else {
            self.window[self.len] = word;
            self.len += 1;
        }
    }
}

/// The vocabulary: every generated token is one of these words, with its leading space
/// (stored with the space so emitting a token never allocates).
pub static TOKENS: &[&str] = &{
    macro_rules! spaced {
        ($($w:literal),* $(,)?) => { [$(concat!(" ", $w)),*] };
    }
    spaced!(
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "was",
        "that",
        "for",
        "on",
        "with",
        "as",
        "by",
        "at",
        "from",
        "his",
        "her",
        "it",
        "an",
        "were",
        "are",
        "which",
        "this",
        "be",
        "or",
        "had",
        "not",
        "but",
        "their",
        "they",
        "have",
        "one",
        "new",
        "first",
        "also",
        "been",
        "has",
        "after",
        "its",
        "two",
        "who",
        "all",
        "into",
        "more",
        "other",
        "there",
        "time",
        "when",
        "would",
        "over",
        "only",
        "while",
        "city",
        "some",
        "most",
        "where",
        "can",
        "many",
        "these",
        "world",
        "such",
        "then",
        "year",
        "between",
        "three",
        "through",
        "state",
        "during",
        "both",
        "later",
        "used",
        "made",
        "well",
        "before",
        "under",
        "since",
        "known",
        "school",
        "until",
        "part",
        "found",
        "same",
        "each",
        "people",
        "early",
        "could",
        "called",
        "second",
        "did",
        "war",
        "any",
        "area",
        "them",
        "long",
        "family",
        "life",
        "team",
        "will",
        "very",
        "just",
        "north",
        "house",
        "river",
        "water",
        "small",
        "light",
        "green",
        "stone",
        "quiet",
        "morning",
        "garden",
        "window",
        "paper",
        "music",
        "story",
        "road",
        "bridge",
        "field",
        "forest",
        "mountain",
        "valley",
        "island",
        "harbor",
        "market",
        "village",
        "station",
        "library",
        "letter",
        "number",
        "question",
        "answer",
        "reason",
        "method",
        "system",
        "signal",
        "engine",
        "machine",
        "model",
        "server",
        "worker",
        "router",
        "token",
        "block",
        "cache",
        "memory",
        "request",
        "response",
        "stream",
        "network",
        "packet",
        "kernel",
        "thread",
        "process",
        "record",
        "table",
        "index",
        "value",
        "order",
        "queue",
        "batch",
        "layer",
        "graph",
        "vector",
        "matrix",
        "simple",
        "careful",
        "bright",
        "gentle",
        "steady",
        "rapid",
        "silent",
        "ancient",
        "modern",
        "common",
        "rare",
        "warm",
        "cold",
        "deep",
        "wide",
        "narrow",
        "open",
        "closed",
        "bold",
        "late",
        "near",
        "far",
        "above",
        "below",
        "around",
        "across",
        "along",
        "behind",
        "beyond",
        "within",
        "without",
        "again",
        "always",
        "never",
        "often",
        "sometimes",
        "together",
        "apart",
        "forward",
        "back",
        "build",
        "carry",
        "follow",
        "gather",
        "hold",
        "keep",
        "learn",
        "move",
        "read",
        "write",
        "send",
        "wait",
        "watch",
        "begin",
        "finish",
        "change",
        "measure",
        "count",
        "share",
        "store",
        "find",
        "place",
        "turn",
        "show",
        "bring",
        "run",
        "walk",
        "speak",
        "listen",
        "think",
        "remember",
        "notice",
        "travel",
        "return",
        "plan",
        "test",
        "fix",
        "balance",
        "route",
        "path",
        "sun",
        "moon",
        "star",
        "cloud",
        "rain",
        "snow",
        "wind",
        "fire",
        "earth",
        "sea",
        "sky",
        "bird",
        "tree",
        "flower",
        "horse",
        "child",
        "friend",
        "teacher",
        "doctor",
        "farmer",
        "captain",
        "king",
        "queen",
        "voice",
        "hand",
        "heart",
        "mind",
        "door",
        "wall",
    )
};

/// Generates `n` tokens after `context` and returns them concatenated.
pub fn generate_text(context: &str, seed: u64, n: usize) -> String {
    let mut generator = TextGen::new(context, seed);
    let mut out = String::with_capacity(n * 8);
    for _ in 0..n {
        out.push_str(generator.next_token());
    }
    out
}

#[cfg(test)]
mod tests {
    use switchyard_protocol::ChatMessage;
    use switchyard_runtime::ChatTemplate;

    use super::*;

    #[test]
    fn tokens_are_distinct_single_words_with_one_leading_space() {
        let distinct: std::collections::HashSet<_> = TOKENS.iter().collect();
        assert_eq!(distinct.len(), TOKENS.len());
        for token in TOKENS {
            assert_eq!(token.split_whitespace().count(), 1, "{token:?}");
            assert!(
                token.starts_with(' ') && !token[1..].starts_with(' '),
                "{token:?}"
            );
        }
    }

    #[test]
    fn same_context_and_seed_give_the_same_text_and_seeds_differ() {
        let a = generate_text("tell me a story", 7, 32);
        assert_eq!(a, generate_text("tell me a story", 7, 32));
        assert_ne!(a, generate_text("tell me a story", 8, 32));
        assert_eq!(
            a.split(' ').count(),
            33,
            "32 tokens, each with a leading space: {a}"
        );
    }

    #[test]
    fn only_the_last_four_words_matter() {
        let a = generate_text("completely different start: one two three four", 1, 8);
        let b = generate_text("x\n\tone   two three\nfour", 1, 8);
        assert_eq!(a, b);
    }

    #[test]
    fn a_completion_of_context_plus_generated_text_continues_the_same_tokens() {
        let messages: Vec<ChatMessage> = serde_json::from_str(
            r#"[{"role":"system","content":"be brief"},{"role":"user","content":"hi there"}]"#,
        )
        .unwrap();
        let context = ChatTemplate::default().render(&messages).unwrap();
        let seed = 42;
        let mut whole = TextGen::new(&context, seed);
        let tokens: Vec<&str> = (0..24).map(|_| whole.next_token()).collect();
        for cut in [0, 1, 3, 4, 5, 17, 23] {
            let prompt = format!("{context}{}", tokens[..cut].concat());
            let rest = generate_text(&prompt, seed, tokens.len() - cut);
            assert_eq!(
                rest,
                tokens[cut..].concat(),
                "continuation after {cut} tokens"
            );
        }
    }
}
