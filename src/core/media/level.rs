//! One source's level: a slow gain toward a common loudness, and a voice detector that follows the microphone's own noise floor.
//!
//! Interpreters' microphones differ by 20 dB and more; without this, switching channel
//! changes the level as much as the language. The gain moves only while the interpreter
//! speaks, within bounds, fast for the first seconds of voice (there is no level to keep
//! yet) and then at most 3 dB a second, so it neither pumps nor lifts the noise in pauses.
//! The level measure is the loudness of voiced 20 ms frames: K-weighted mean square as in
//! ITU-R BS.1770, averaged as energy, so it reads as LUFS do.

use super::codec::FRAME;
use super::mixer::level_dbfs;

/// The loudness every interpreter is brought to, LUFS of voiced speech. It leaves room for
/// speech peaks (12-20 dB over its loudness) under the mixer's limiter, and is about where
/// speech heard online sits.
pub const TARGET_LUFS: f32 = -20.0;
/// Most gain added to a quiet microphone (one peaking at -30 dBFS needs about 25 dB), and
/// taken from a loud one.
const MAX_BOOST_DB: f32 = 30.0;
const MAX_CUT_DB: f32 = -20.0;
/// Fastest gain change per frame once the level is known: 3 dB a second...
const SLEW_DB: f32 = 0.06;
/// ...and while it is being learnt, over the first seconds of voice: 10 dB a second.
const LEARN_SLEW_DB: f32 = 0.2;
const LEARN_FRAMES: u32 = 150;
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
    /// Smoothed K-weighted mean square of voiced frames.
    level_ms: Option<f32>,
    voiced_frames: u32,
    noise_db: f32,
    voiced: bool,
    k: KWeighting,
}

impl Default for Leveler {
    fn default() -> Self {
        // The noise floor starts at the least voice level and learns the microphone from there.
        Leveler {
            gain_db: 0.0,
            level_ms: None,
            voiced_frames: 0,
            noise_db: MIN_VOICE_DB,
            voiced: false,
            k: KWeighting::default(),
        }
    }
}

impl Leveler {
    /// Levels one decoded frame in place; says whether it is voice (before the gain).
    pub fn process(&mut self, pcm: &mut [f32; FRAME]) -> bool {
        let db = level_dbfs(pcm);
        let ms = self.k.mean_square(pcm);
        self.noise_db = if db < self.noise_db { db } else { self.noise_db + NOISE_RISE_DB };
        self.voiced = db > MIN_VOICE_DB && db > self.noise_db + OVER_NOISE_DB;
        if self.voiced {
            let level = self.level_ms.map_or(ms, |l| l + SMOOTH * (ms - l));
            self.level_ms = Some(level);
            let want = (TARGET_LUFS - lufs(level)).clamp(MAX_CUT_DB, MAX_BOOST_DB);
            let slew = if self.voiced_frames < LEARN_FRAMES { LEARN_SLEW_DB } else { SLEW_DB };
            self.voiced_frames = self.voiced_frames.saturating_add(1);
            self.gain_db += (want - self.gain_db).clamp(-slew, slew);
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

/// Loudness (LUFS) of a K-weighted mean square.
pub fn lufs(mean_square: f32) -> f32 {
    -0.691 + 10.0 * mean_square.max(1e-12).log10()
}

/// The K-weighting filter of ITU-R BS.1770 at 48 kHz: a high shelf (the head) then a high
/// pass (RLB), as two biquads with their state carried from frame to frame.
#[derive(Default)]
pub struct KWeighting {
    state: [[f32; 4]; 2],
}

impl KWeighting {
    const STAGES: [([f32; 3], [f32; 2]); 2] = [
        ([1.535_124_9, -2.691_696_2, 1.198_392_8], [-1.690_659_3, 0.732_480_8]),
        ([1.0, -2.0, 1.0], [-1.990_047_5, 0.990_072_25]),
    ];

    /// The K-weighted mean square of a frame.
    pub fn mean_square(&mut self, pcm: &[f32]) -> f32 {
        let mut sum = 0f64;
        for &x in pcm {
            let mut y = x;
            for (([b0, b1, b2], [a1, a2]), [x1, x2, y1, y2]) in Self::STAGES.iter().zip(self.state.iter_mut())
            {
                let out = b0 * y + b1 * *x1 + b2 * *x2 - a1 * *y1 - a2 * *y2;
                (*x2, *x1, *y2, *y1) = (*x1, y, *y1, out);
                y = out;
            }
            sum += (y * y) as f64;
        }
        (sum / pcm.len().max(1) as f64) as f32
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
                out = lufs(KWeighting::default().mean_square(&f));
            }
        }
        out
    }

    #[test]
    fn quiet_and_loud_microphones_end_within_2_lu_of_each_other() {
        let (mut quiet, mut loud) = (Leveler::default(), Leveler::default());
        let q = talk(&mut quiet, -30.0, 500);
        let l = talk(&mut loud, -6.0, 500);
        println!("after 10 s: -30 dBFS peaks at {q:.1} LUFS, -6 dBFS peaks at {l:.1} LUFS");
        assert!((q - l).abs() <= 2.0, "{q:.1} vs {l:.1}");
        assert!((q - TARGET_LUFS).abs() <= 1.5, "{q:.1}");
    }

    #[test]
    fn the_gain_moves_slowly_and_not_in_pauses() {
        let mut l = Leveler::default();
        talk(&mut l, -40.0, 250);
        assert!(l.gain_db() <= 150.0 * LEARN_SLEW_DB + 50.0 * SLEW_DB + 1e-3, "{}", l.gain_db());
        let before = l.gain_db();
        talk(&mut l, -40.0, 50);
        let moved = l.gain_db() - before;
        assert!(moved > 0.0 && moved <= 40.0 * SLEW_DB + 1e-3, "at most 3 dB a second once learnt: {moved}");
        let g = l.gain_db();
        for _ in 0..100 {
            let mut silence = [0.0; FRAME];
            assert!(!l.process(&mut silence));
        }
        assert_eq!(l.gain_db(), g, "held through a pause");
    }

    #[test]
    fn k_weighting_reads_a_1_khz_tone_as_its_rms_and_cuts_the_bass() {
        let sine = |hz: f32| -> Vec<f32> {
            (0..48_000).map(|i| (std::f32::consts::TAU * hz * i as f32 / 48_000.0).sin()).collect()
        };
        let at = |hz| {
            let mut k = KWeighting::default();
            k.mean_square(&sine(hz)[..24_000]);
            lufs(k.mean_square(&sine(hz)[24_000..]))
        };
        // BS.1770: a full-scale 1 kHz sine reads -3.01 LUFS; 50 Hz is cut by the high pass.
        assert!((at(1000.0) + 3.01).abs() < 0.1, "{}", at(1000.0));
        assert!(at(50.0) < -3.01 - 1.0, "{}", at(50.0));
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
