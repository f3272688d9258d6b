//! One interpreter's level: a slow gain toward a common speech level, and a voice detector that follows the microphone's own noise floor.
//!
//! Interpreters' microphones differ by 20 dB and more; without this, switching channel
//! changes the level as much as the language. The gain moves only while the interpreter
//! speaks, at most 3 dB a second and within bounds, so it neither pumps nor lifts the noise
//! in pauses. The level measure is the RMS of voiced 20 ms frames (close to loudness for
//! speech; no K-weighting).

use super::codec::FRAME;
use super::mixer::level_dbfs;

/// The speech level every interpreter is brought to: RMS of voiced frames, dBFS (about
/// -16 LUFS for speech, the usual target for speech heard online).
const TARGET_DB: f32 = -16.0;
/// Most gain added to a quiet microphone, and taken from a loud one.
const MAX_BOOST_DB: f32 = 18.0;
const MAX_CUT_DB: f32 = -12.0;
/// Fastest gain change per frame: 3 dB a second.
const SLEW_DB: f32 = 0.06;
/// Weight of each voiced frame in the level estimate (about a second of speech).
const SMOOTH: f32 = 0.02;
/// A frame is voice when this far above the microphone's noise floor...
const OVER_NOISE_DB: f32 = 10.0;
/// ...and above this, whatever the floor.
const MIN_VOICE_DB: f32 = -60.0;
/// How fast the noise floor estimate rises while the microphone is busy (0.5 dB a second):
/// it falls at once to any quieter frame, so pauses between words keep it low.
const NOISE_RISE_DB: f32 = 0.01;

pub struct Leveler {
    gain_db: f32,
    level_db: Option<f32>,
    noise_db: f32,
    voiced: bool,
}

impl Default for Leveler {
    fn default() -> Self {
        // The noise floor starts at the least voice level and learns the microphone from there.
        Leveler { gain_db: 0.0, level_db: None, noise_db: MIN_VOICE_DB, voiced: false }
    }
}

impl Leveler {
    /// Levels one decoded frame in place; says whether it is voice (before the gain).
    pub fn process(&mut self, pcm: &mut [f32; FRAME]) -> bool {
        let db = level_dbfs(pcm);
        self.noise_db = if db < self.noise_db { db } else { self.noise_db + NOISE_RISE_DB };
        self.voiced = db > MIN_VOICE_DB && db > self.noise_db + OVER_NOISE_DB;
        if self.voiced {
            let level = self.level_db.map_or(db, |l| l + SMOOTH * (db - l));
            self.level_db = Some(level);
            let want = (TARGET_DB - level).clamp(MAX_CUT_DB, MAX_BOOST_DB);
            self.gain_db += (want - self.gain_db).clamp(-SLEW_DB, SLEW_DB);
        }
        if self.gain_db != 0.0 {
            let g = 10f32.powf(self.gain_db / 20.0);
            pcm.iter_mut().for_each(|x| *x *= g);
        }
        self.voiced
    }

    /// Whether the last frame was voice.
    pub fn voiced(&self) -> bool {
        self.voiced
    }

    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(peak_db: f32, n: usize) -> [f32; FRAME] {
        let a = 10f32.powf(peak_db / 20.0);
        let mut pcm = [0f32; FRAME];
        for (i, s) in pcm.iter_mut().enumerate() {
            *s = a * (2.0 * std::f32::consts::PI * 440.0 * (n * FRAME + i) as f32 / 48_000.0).sin();
        }
        pcm
    }

    /// Speech-like: 400 ms of tone, 100 ms of silence (the pauses between words).
    fn talk(l: &mut Leveler, peak_db: f32, frames: usize) -> f32 {
        let mut out = 0.0;
        for n in 0..frames {
            let mut f = if n % 25 < 20 { tone(peak_db, n) } else { [0.0; FRAME] };
            l.process(&mut f);
            if n % 25 < 20 {
                out = level_dbfs(&f);
            }
        }
        out
    }

    #[test]
    fn quiet_and_loud_microphones_end_within_2_db_of_each_other() {
        let (mut quiet, mut loud) = (Leveler::default(), Leveler::default());
        let q = talk(&mut quiet, -30.0, 500);
        let l = talk(&mut loud, -6.0, 500);
        println!("after 10 s: -30 dBFS peaks at {q:.1} dBFS RMS, -6 dBFS peaks at {l:.1}");
        assert!((q - l).abs() <= 2.0, "{q:.1} vs {l:.1}");
        assert!((q - TARGET_DB).abs() <= 1.5, "{q:.1}");
    }

    #[test]
    fn the_gain_moves_slowly_and_not_in_pauses() {
        let mut l = Leveler::default();
        talk(&mut l, -30.0, 25);
        assert!(l.gain_db() <= 25.0 * SLEW_DB + 1e-3, "at most 3 dB a second");
        let g = l.gain_db();
        for _ in 0..100 {
            let mut silence = [0.0; FRAME];
            assert!(!l.process(&mut silence));
        }
        assert_eq!(l.gain_db(), g, "held through a pause");
    }

    #[test]
    fn noise_is_not_voice_and_a_quiet_voice_over_it_is() {
        let mut l = Leveler::default();
        let mut x: u32 = 3;
        let mut hiss = || {
            let mut f = [0f32; FRAME];
            for s in f.iter_mut() {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *s = ((x >> 8) as f32 / 16_777_216.0 - 0.5) * 0.008; // about -53 dBFS RMS
            }
            f
        };
        let voiced = (0..100).filter(|_| l.process(&mut hiss())).count();
        assert!(voiced <= 1, "a hissing microphone is not voice: {voiced} frames");
        assert_eq!(l.gain_db(), 0.0, "and its hiss is not lifted");
        let mut word = tone(-35.0, 0);
        for (s, h) in word.iter_mut().zip(hiss()) {
            *s += h;
        }
        assert!(l.process(&mut word), "a quiet voice 20 dB over the hiss is");
    }
}
