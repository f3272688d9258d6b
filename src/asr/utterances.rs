//! One captioned source's utterances: voice-gated windows of 16 kHz audio, and LocalAgreement over successive hypotheses. No model, no clock.
//!
//! Audio arrives in 20 ms chunks stamped with the room's media time. A window
//! opens on voice (with 200 ms of pre-roll) and is transcribed every 750 ms
//! of new audio; the words two consecutive hypotheses agree on are committed
//! as a final caption and never change (LocalAgreement-2, as in
//! whisper_streaming); the rest is the partial. After 600 ms of silence, or
//! 12 s of window, the window is transcribed once more and everything left is
//! committed. Silence never reaches the model.

use std::collections::VecDeque;

pub const RATE: u64 = 16_000;
/// One 20 ms chunk at 16 kHz.
pub const CHUNK: usize = 320;
const CHUNK_MS: u64 = 20;
/// Audio kept from before the voice started, so the first syllable is whole.
const PRE_ROLL: usize = 10;
/// Silence that ends an utterance.
const END_SILENCE_MS: u64 = 600;
/// New audio between two transcriptions of an open window: a partial within
/// 1.5 s of the words needs this plus the model's time well under a second.
const STEP_MS: u64 = 750;
/// Longest window: Whisper's cost grows with it, and 12 s holds two sentences.
const MAX_WINDOW_MS: u64 = 12_000;
/// The last words of a hypothesis may be cut off mid-word: they are never final before the utterance ends.
const UNSETTLED: usize = 2;
/// Chunk level above which it counts as voice (speech at a working level is -30 to -10 dBFS).
const VOICE_DBFS: f32 = -45.0;

/// What the recogniser should do after a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Nothing,
    /// Transcribe the open window for a partial (and agreed finals).
    Run,
    /// Transcribe the window and commit everything: the utterance ended.
    Finish,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub text: String,
    pub is_final: bool,
    /// Media time (ms) the caption covers, estimated from word positions in the window.
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Default)]
pub struct Utterances {
    history: VecDeque<(u64, Vec<f32>)>,
    window: Vec<f32>,
    start_ms: u64,
    last_ms: u64,
    last_voice_ms: u64,
    open: bool,
    since_run_ms: u64,
    /// The last hypothesis's words after the final ones.
    prev: Vec<String>,
    /// Words of this window already sent as final.
    committed: Vec<String>,
    partial: String,
}

/// A word of a hypothesis and where it ends, in ms from the window's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub text: String,
    pub end_ms: u64,
}

fn level_dbfs(pcm: &[f32]) -> f32 {
    let ms = pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len().max(1) as f32;
    10.0 * (ms + 1e-12).log10()
}

/// Words compared without case or punctuation: Whisper moves commas around between hypotheses.
fn norm(w: &str) -> String {
    w.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

impl Utterances {
    /// Adds a chunk of 16 kHz audio stamped with its media time (ms).
    pub fn push(&mut self, ms: u64, pcm: &[f32]) -> Work {
        self.last_ms = ms;
        let voice = level_dbfs(pcm) > VOICE_DBFS;
        if !self.open {
            self.history.push_back((ms, pcm.to_vec()));
            if self.history.len() > PRE_ROLL {
                self.history.pop_front();
            }
            if !voice {
                return Work::Nothing;
            }
            self.open = true;
            self.start_ms = self.history.front().map_or(ms, |(t, _)| *t);
            self.window.clear();
            for (_, c) in self.history.drain(..) {
                self.window.extend_from_slice(&c);
            }
            self.last_voice_ms = ms;
            self.since_run_ms = 0;
            return Work::Nothing;
        }
        self.window.extend_from_slice(pcm);
        self.since_run_ms += CHUNK_MS;
        if voice {
            self.last_voice_ms = ms;
        }
        let len_ms = self.window.len() as u64 * 1000 / RATE;
        if ms.saturating_sub(self.last_voice_ms) >= END_SILENCE_MS || len_ms >= MAX_WINDOW_MS {
            Work::Finish
        } else if self.since_run_ms >= STEP_MS {
            self.since_run_ms = 0;
            Work::Run
        } else {
            Work::Nothing
        }
    }

    /// The open window's audio.
    pub fn window(&self) -> &[f32] {
        &self.window
    }

    /// Media time (ms) of the newest audio in the window.
    pub fn end_ms(&self) -> u64 {
        self.last_ms
    }

    /// Takes the model's hypothesis for the whole open window; returns the captions to send.
    ///
    /// The words already final for this window are found again at the start
    /// of the hypothesis (by the alignment that needs fewest edits, since
    /// Whisper may split or merge them differently); of what follows, the
    /// words this and the previous hypothesis agree on are final, except the
    /// last `UNSETTLED`, which may be cut off mid-word. On `finish`,
    /// everything left is final and the window closes.
    pub fn hypothesis(&mut self, words: Vec<Word>, finish: bool) -> Vec<Segment> {
        let mut out = Vec::new();
        let texts: Vec<String> = words.into_iter().map(|w| w.text).collect();
        let fresh = texts[align(&self.committed, &texts)..].to_vec();
        let n = fresh.len();
        let stable = if finish {
            n
        } else {
            let agreed = self.prev.iter().zip(&fresh).take_while(|(a, b)| norm(a) == norm(b)).count();
            agreed.min(n.saturating_sub(UNSETTLED))
        };
        let end = if finish { self.last_voice_ms + CHUNK_MS } else { self.last_ms + CHUNK_MS };
        if stable > 0 {
            let total = self.committed.len() + n;
            let at = |k: usize| self.start_ms + (end - self.start_ms) * k as u64 / total.max(1) as u64;
            out.push(Segment {
                text: fresh[..stable].join(" "),
                is_final: true,
                start_ms: at(self.committed.len()),
                end_ms: if finish { end } else { at(self.committed.len() + stable) },
            });
            self.committed.extend(fresh[..stable].iter().cloned());
        }
        if finish {
            self.open = false;
            self.window.clear();
            self.prev.clear();
            self.committed.clear();
            self.partial.clear();
            return out;
        }
        let rest = fresh[stable..].to_vec();
        let partial = rest.join(" ");
        if !partial.is_empty() && partial != self.partial {
            out.push(Segment {
                text: partial.clone(),
                is_final: false,
                start_ms: self.start_ms,
                end_ms: end,
            });
        }
        self.partial = partial;
        self.prev = rest;
        out
    }
}

/// Levenshtein distance between all of `a` and each prefix of `b` (`b.len() + 1` entries).
pub fn edits<T: PartialEq>(a: &[T], b: &[T]) -> Vec<usize> {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev
}

/// Word error rate of `heard` against `said`, ignoring case and punctuation.
pub fn wer(said: &str, heard: &str) -> f64 {
    let words = |s: &str| s.split_whitespace().map(norm).filter(|w| !w.is_empty()).collect::<Vec<_>>();
    let (a, b) = (words(said), words(heard));
    edits(&a, &b)[b.len()] as f64 / a.len().max(1) as f64
}

/// How many words at the start of `hyp` correspond to `done`: compared as
/// letters without spaces or punctuation (Whisper splits and merges words
/// between hypotheses), the word boundary with the fewest edits (ties: the later).
fn align(done: &[String], hyp: &[String]) -> usize {
    if done.is_empty() {
        return 0;
    }
    let a: Vec<char> = done.iter().flat_map(|w| norm(w).chars().collect::<Vec<_>>()).collect();
    let mut b: Vec<char> = Vec::new();
    let mut bounds = vec![0];
    for w in hyp {
        b.extend(norm(w).chars());
        bounds.push(b.len());
    }
    let prev = edits(&a, &b);
    let cost: Vec<usize> = bounds.iter().map(|&k| prev[k]).collect();
    let best = *cost.iter().min().expect("at least the empty prefix");
    cost.iter().rposition(|c| *c == best).expect("the minimum is there")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut Utterances, from_ms: u64, chunks: usize, level: f32) -> Vec<Work> {
        (0..chunks)
            .map(|i| {
                let pcm: Vec<f32> = (0..CHUNK).map(|k| level * ((k as f32) * 0.3).sin()).collect();
                s.push(from_ms + i as u64 * CHUNK_MS, &pcm)
            })
            .collect()
    }

    #[test]
    fn silence_never_opens_a_window() {
        let mut s = Utterances::default();
        assert!(feed(&mut s, 0, 500, 0.001).iter().all(|w| *w == Work::Nothing));
        assert!(s.window().is_empty());
    }

    #[test]
    fn voice_opens_runs_and_silence_finishes() {
        let mut s = Utterances::default();
        let work = feed(&mut s, 0, 100, 0.2);
        assert_eq!(work.iter().filter(|w| **w == Work::Run).count(), 2, "a run every 750 ms of audio");
        let work = feed(&mut s, 2000, 40, 0.0);
        assert_eq!(work.iter().position(|w| *w == Work::Finish), Some(29), "600 ms of silence ends it");
    }

    fn hyp(s: &str) -> Vec<Word> {
        s.split_whitespace().map(|w| Word { text: w.to_string(), end_ms: 0 }).collect()
    }

    #[test]
    fn local_agreement_commits_what_two_hypotheses_share() {
        let mut s = Utterances::default();
        feed(&mut s, 0, 100, 0.2);
        let c = s.hypothesis(hyp("the quick brown"), false);
        assert_eq!(c.len(), 1);
        assert!(!c[0].is_final && c[0].text == "the quick brown");
        let c = s.hypothesis(hyp("The quick, brown fox jumps"), false);
        assert_eq!(
            (c[0].text.as_str(), c[0].is_final),
            ("The quick, brown", true),
            "agreed, and not the last two"
        );
        assert_eq!((c[1].text.as_str(), c[1].is_final), ("fox jumps", false));
        // Whisper merges two final words into one: the alignment still finds where the new words start.
        let c = s.hypothesis(hyp("The quickbrown fox jumped over the"), false);
        assert_eq!((c[0].text.as_str(), c[0].is_final), ("fox", true));
        assert_eq!(c[1].text, "jumped over the");
        let c = s.hypothesis(hyp("The quick brown fox jumped over the dog."), true);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].text.as_str(), c[0].is_final),
            ("jumped over the dog.", true),
            "finish commits the rest"
        );
        assert!(s.window().is_empty());
    }

    #[test]
    fn word_error_rate() {
        assert_eq!(wer("The cat sat.", "the cat sat"), 0.0);
        assert_eq!(wer("the cat sat on the mat", "the cat sat on a mat"), 1.0 / 6.0);
        assert_eq!(wer("a b", ""), 1.0);
    }

    #[test]
    fn alignment_tolerates_split_and_merged_words() {
        let w = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(align(&w("the interpreters will"), &w("The Interpreter's will now switch")), 3);
        assert_eq!(align(&w("the interpreters"), &w("the inter preters will now")), 3);
        assert_eq!(align(&[], &w("a b")), 0);
    }
}
