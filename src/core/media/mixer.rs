//! Sums, ducks and limits PCM frames in caller-owned buffers; no allocation, no codec.

use super::codec::{FRAME, SAMPLE_RATE};

/// `dst += src * gain`.
pub fn add(dst: &mut [f32; FRAME], src: &[f32; FRAME], gain: f32) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s * gain;
    }
}

/// RMS level of a frame in dBFS (-120 for digital silence).
pub fn level_dbfs(pcm: &[f32; FRAME]) -> f32 {
    let ms = pcm.iter().map(|s| s * s).sum::<f32>() / FRAME as f32;
    if ms <= 1e-12 {
        -120.0
    } else {
        10.0 * ms.log10()
    }
}

/// How a channel lowers the floor under its interpreter.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DuckSettings {
    /// Floor gain while the interpreter speaks, in dB (negative).
    pub depth_db: f32,
    /// Time to reach full depth once the interpreter speaks.
    pub attack_ms: f32,
    /// Time to return to full level once the hold has passed.
    pub release_ms: f32,
    /// Silence of the interpreter after which the floor is back at full level
    /// (the release ramp ends then, so a listener is never left in silence).
    pub hold_ms: f32,
}

impl Default for DuckSettings {
    fn default() -> Self {
        DuckSettings { depth_db: -15.0, attack_ms: 50.0, release_ms: 400.0, hold_ms: 2000.0 }
    }
}

/// Ramp back to full level when nobody is on air any more (a dropped
/// interpreter): fast enough to be complete well within 200 ms, slow enough not to click.
const FAST_RELEASE_MS: f32 = 100.0;

/// Floor gain envelope driven by the interpreter's voice activity, ramped
/// linearly in dB per sample so that it never clicks.
pub struct Ducker {
    settings: DuckSettings,
    gain_db: f32,
    /// Samples since the interpreter's voice was last heard.
    silent_for: u64,
    /// Release with [`FAST_RELEASE_MS`] until full level is reached.
    fast: bool,
}

impl Ducker {
    pub fn new(settings: DuckSettings) -> Self {
        Ducker { settings, gain_db: 0.0, silent_for: u64::MAX / 2, fast: false }
    }

    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// Records whether the interpreter spoke in this frame.
    pub fn set_voice(&mut self, voice: bool) {
        if voice {
            self.silent_for = 0;
            self.fast = false;
        } else {
            self.silent_for = self.silent_for.saturating_add(FRAME as u64);
        }
    }

    /// Nobody is on air: return to full level now, quickly.
    pub fn release_fast(&mut self) {
        self.silent_for = u64::MAX / 2;
        self.fast = true;
    }

    /// Applies this frame's envelope to `floor` in place.
    pub fn apply(&mut self, floor: &mut [f32; FRAME]) {
        let s = &self.settings;
        // Release early enough that the ramp ends when the hold does.
        let hold = ((s.hold_ms - s.release_ms).max(0.0) / 1000.0 * SAMPLE_RATE as f32) as u64;
        let target = if self.silent_for <= hold { s.depth_db.min(0.0) } else { 0.0 };
        let depth = s.depth_db.abs().max(0.1);
        let release_ms = if self.fast { FAST_RELEASE_MS } else { s.release_ms };
        let down = depth / (s.attack_ms.max(1.0) / 1000.0 * SAMPLE_RATE as f32);
        let up = depth / (release_ms.max(1.0) / 1000.0 * SAMPLE_RATE as f32);
        if self.gain_db == target {
            // Steady (most frames): one gain for the whole frame, none at full level.
            if self.gain_db != 0.0 {
                let g = db_to_gain(self.gain_db);
                floor.iter_mut().for_each(|x| *x *= g);
            }
        } else {
            for x in floor.iter_mut() {
                if self.gain_db > target {
                    self.gain_db = (self.gain_db - down).max(target);
                } else if self.gain_db < target {
                    self.gain_db = (self.gain_db + up).min(target);
                }
                *x *= db_to_gain(self.gain_db);
            }
        }
        if self.gain_db >= 0.0 {
            self.fast = false;
        }
    }
}

pub fn db_to_gain(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// Peak limiter for everything sent down (acoustic shock protection): no
/// sample leaves above the ceiling; gain recovers smoothly afterwards.
pub struct Limiter {
    /// Current gain reduction (1.0 = none).
    gain: f32,
    /// Per-sample recovery factor: back to unity in about 100 ms.
    recover: f32,
}

/// -2 dBFS: what the Opus decoder adds on top of speech, music and tones (up to 0.5 dB,
/// measured on a 3 kHz tone) and the peaks between samples still leave the decoded true
/// peak under -1 dBTP.
const CEILING: f32 = 0.794;
/// Noise-like frames (a clipped microphone, applause, a hiss) come out of the decoder with
/// the peaks of Gaussian noise, up to 14 dB over their RMS whatever their peaks went in as:
/// their RMS is held to -15 dBFS, measured on clipped white noise.
const NOISE_RMS: f32 = 0.178;
/// Share of samples that change sign above which a frame counts as noise-like: white noise
/// has 0.5, speech's voiced sounds and tones far less.
const NOISE_CROSSINGS: f32 = 0.25;

impl Limiter {
    pub fn new() -> Self {
        let recover = (1.0f32 / 0.001).powf(1.0 / (0.1 * SAMPLE_RATE as f32)).min(1.001);
        Limiter { gain: 1.0, recover }
    }

    /// The most gain this frame may have for its noise-like part (1.0 for anything else).
    fn noise_gain(pcm: &[f32; FRAME]) -> f32 {
        let crossings = pcm.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count() as f32;
        if crossings < NOISE_CROSSINGS * FRAME as f32 {
            return 1.0;
        }
        let rms = (pcm.iter().map(|x| x * x).sum::<f32>() / FRAME as f32).sqrt();
        (NOISE_RMS / rms.max(1e-9)).min(1.0)
    }

    /// Whether `pcm` would leave this limiter changed (a peak above the ceiling, loud noise, or gain still recovering).
    pub fn would_limit(&self, pcm: &[f32; FRAME]) -> bool {
        self.gain < 1.0 || Self::noise_gain(pcm) < 1.0 || pcm.iter().any(|x| x.abs() > CEILING)
    }

    pub fn apply(&mut self, pcm: &mut [f32; FRAME]) {
        // Noise is held down for the whole frame; peaks are caught sample by sample.
        let cap = Self::noise_gain(pcm);
        self.gain = self.gain.min(cap);
        for x in pcm.iter_mut() {
            self.gain = (self.gain * self.recover).min(cap);
            let peak = x.abs() * self.gain;
            if peak > CEILING {
                self.gain = CEILING / x.abs();
            }
            *x *= self.gain;
        }
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(level: f32) -> [f32; FRAME] {
        let mut f = [0f32; FRAME];
        for (i, s) in f.iter_mut().enumerate() {
            *s = level * (i as f32 * 0.1).sin();
        }
        f
    }

    #[test]
    fn ducks_then_holds_then_releases() {
        let settings = DuckSettings::default();
        let mut d = Ducker::new(settings);
        let mut f = tone(0.5);
        // 100 ms of voice: well past the 50 ms attack.
        for _ in 0..5 {
            f = tone(0.5);
            d.set_voice(true);
            d.apply(&mut f);
        }
        assert!((d.gain_db() - settings.depth_db).abs() < 0.01);
        assert!(level_dbfs(&f) < level_dbfs(&tone(0.5)) - 14.0);
        // Silence shorter than the hold minus the release keeps the floor down.
        for _ in 0..75 {
            d.set_voice(false);
            d.apply(&mut f);
        }
        assert!((d.gain_db() - settings.depth_db).abs() < 0.01, "held at {}", d.gain_db());
        // Once the hold has passed the floor is back at full level.
        for _ in 0..26 {
            d.set_voice(false);
            d.apply(&mut f);
        }
        assert_eq!(d.gain_db(), 0.0);
    }

    #[test]
    fn fast_release_is_done_within_200ms() {
        let mut d = Ducker::new(DuckSettings::default());
        let mut f = tone(0.5);
        for _ in 0..5 {
            d.set_voice(true);
            d.apply(&mut f);
        }
        d.release_fast();
        for _ in 0..5 {
            d.set_voice(false);
            d.apply(&mut f);
        }
        assert_eq!(d.gain_db(), 0.0, "full level after 100 ms");
    }

    #[test]
    fn limiter_caps_peaks() {
        let mut l = Limiter::new();
        let mut f = tone(4.0);
        l.apply(&mut f);
        assert!(f.iter().all(|s| s.abs() <= CEILING + 1e-6));
        let mut quiet = tone(0.1);
        let before = quiet;
        let mut l = Limiter::new();
        l.apply(&mut quiet);
        assert_eq!(quiet, before, "quiet audio passes untouched");
    }

    #[test]
    fn loud_noise_is_held_to_its_rms_ceiling_for_the_whole_frame() {
        let mut x: u32 = 7;
        let mut noise = [0f32; FRAME];
        for s in noise.iter_mut() {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *s = ((x >> 8) as f32 / 16_777_216.0 * 4.0 - 2.0).clamp(-1.0, 1.0);
        }
        let mut l = Limiter::new();
        assert!(l.would_limit(&noise));
        for _ in 0..3 {
            let mut f = noise;
            l.apply(&mut f);
            let rms = (f.iter().map(|s| s * s).sum::<f32>() / FRAME as f32).sqrt();
            assert!(rms <= NOISE_RMS * 1.01, "held to -15 dBFS RMS: {:.1} dBFS", 20.0 * rms.log10());
            let tail = (f[FRAME / 2..].iter().map(|s| s * s).sum::<f32>() / (FRAME / 2) as f32).sqrt();
            assert!(tail <= NOISE_RMS * 1.05, "the gain does not recover within the frame");
        }
        // A tone as loud is not noise: only its peaks are limited.
        let mut t = tone(0.7);
        let before = t;
        Limiter::new().apply(&mut t);
        assert_eq!(t, before, "a -3 dBFS tone passes untouched");
    }
}
