//! The speech model: whisper.cpp (through whisper-rs) on a window of 16 kHz audio, to words.

use super::utterances::Word;
use std::path::Path;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState};

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error(
        "no speech model in {0}: run models/get.sh tiny.en (English) and models/get.sh base (multilingual)"
    )]
    NoModel(String),
    #[error("no model for language {0}: run models/get.sh base")]
    Language(String),
    #[error("whisper: {0}")]
    Whisper(#[from] whisper_rs::WhisperError),
}

struct Model {
    // Kept alive for the state made from it.
    _ctx: WhisperContext,
    state: WhisperState,
}

fn load(path: &Path) -> Result<Option<Model>, AsrError> {
    if !path.exists() {
        return Ok(None);
    }
    let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())?;
    let state = ctx.create_state()?;
    Ok(Some(Model { _ctx: ctx, state }))
}

/// English (tiny.en) and multilingual (base) Whisper, whichever are installed.
pub struct Recognizer {
    english: Option<Model>,
    multilingual: Option<Model>,
    threads: i32,
}

impl Recognizer {
    /// Loads `ggml-tiny.en.bin` and `ggml-base.bin` from `dir`; at least one must be there.
    pub fn load(dir: &Path, threads: i32) -> Result<Recognizer, AsrError> {
        whisper_rs::install_logging_hooks();
        let english = load(&dir.join("ggml-tiny.en.bin"))?;
        let multilingual = load(&dir.join("ggml-base.bin"))?;
        if english.is_none() && multilingual.is_none() {
            return Err(AsrError::NoModel(dir.display().to_string()));
        }
        Ok(Recognizer { english, multilingual, threads })
    }

    /// Whether a language (BCP 47; `None` = detect) can be captioned.
    pub fn supports(&self, lang: Option<&str>) -> bool {
        self.multilingual.is_some() || (primary(lang) == Some("en") && self.english.is_some())
    }

    /// Transcribes a window; returns its words with where each ends, without Whisper's non-speech annotations.
    pub fn words(&mut self, pcm: &[f32], lang: Option<&str>) -> Result<Vec<Word>, AsrError> {
        let lang = primary(lang);
        let model = match (lang, &mut self.english, &mut self.multilingual) {
            (Some("en"), Some(en), _) => en,
            (_, _, Some(multi)) => multi,
            (l, _, None) => return Err(AsrError::Language(l.unwrap_or("auto").to_string())),
        };
        // Whisper wants at least a second; shorter windows are padded with silence.
        let mut padded;
        let pcm = if pcm.len() < 16_000 {
            padded = pcm.to_vec();
            padded.resize(16_000, 0.0);
            &padded[..]
        } else {
            pcm
        };
        let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        p.set_n_threads(self.threads);
        p.set_language(Some(lang.unwrap_or("auto")));
        p.set_no_context(true);
        p.set_single_segment(true);
        // Token times tell where committed words end, so their audio can leave the window.
        p.set_token_timestamps(true);
        p.set_print_special(false);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_timestamps(false);
        p.set_suppress_blank(true);
        p.set_suppress_nst(true);
        // No temperature fallback: one decode per window, bounded cost.
        p.set_temperature_inc(0.0);
        p.set_max_tokens(96);
        // The encoder only looks at as much context as the window needs (50 frames a second),
        // which is most of the speed-up over a full 30 s pass.
        // 128 frames of margin: with less, Whisper misreads the last words and may loop.
        let ctx = ((pcm.len() as u64 * 50 / 16_000 + 128).div_ceil(64) * 64).min(1500);
        p.set_audio_ctx(ctx as i32);
        model.state.full(p, pcm)?;
        let mut words: Vec<(Vec<u8>, u64)> = Vec::new();
        for i in 0..model.state.full_n_segments() {
            let Some(seg) = model.state.get_segment(i) else { continue };
            for t in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(t) else { continue };
                let bytes = tok.to_bytes()?;
                // Special tokens ([_BEG_], <|endoftext|>, timestamps) are not speech.
                if bytes.starts_with(b"[_") || bytes.starts_with(b"<|") {
                    continue;
                }
                let end_ms = tok.token_data().t1.max(0) as u64 * 10;
                match words.last_mut() {
                    Some((w, end)) if !bytes.starts_with(b" ") => {
                        w.extend_from_slice(bytes);
                        *end = end_ms.max(*end);
                    }
                    _ => words.push((bytes.to_vec(), end_ms)),
                }
            }
        }
        let pcm_ms = pcm.len() as u64 * 1000 / 16_000;
        let words = words.into_iter().map(|(b, end_ms)| Word {
            text: String::from_utf8_lossy(&b).trim().to_string(),
            end_ms: end_ms.min(pcm_ms),
        });
        Ok(clean(words))
    }
}

fn primary(lang: Option<&str>) -> Option<&str> {
    lang.map(|l| l.split('-').next().unwrap_or(l))
}

/// Drops what Whisper writes for non-speech: `[BLANK_AUDIO]`, `(music)`, `*laughs*`, `♪`.
pub fn clean(words: impl IntoIterator<Item = Word>) -> Vec<Word> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut star = false;
    for w in words {
        let mut kept = String::new();
        for c in w.text.chars() {
            match c {
                '[' | '(' => depth += 1,
                ']' | ')' => depth = (depth - 1).max(0),
                '*' => star = !star,
                '♪' | '♫' => {}
                _ if depth == 0 && !star => kept.push(c),
                _ => {}
            }
        }
        let kept = kept.trim();
        if !kept.is_empty() {
            out.push(Word { text: kept.to_string(), end_ms: w.end_ms });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Word> {
        s.split_whitespace().map(|w| Word { text: w.to_string(), end_ms: 0 }).collect()
    }

    fn texts(w: Vec<Word>) -> Vec<String> {
        w.into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn drops_non_speech_annotations() {
        assert!(clean(words(" [BLANK_AUDIO] ")).is_empty());
        assert_eq!(
            texts(clean(words("Hello (upbeat music) world ♪ *sigh* again"))),
            vec!["Hello", "world", "again"]
        );
    }
}
