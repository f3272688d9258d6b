//! 48 kHz to 16 kHz for speech recognition: a windowed-sinc low-pass, then every third sample.

use super::codec::{FRAME, SAMPLE_RATE};

/// Taps of the 48 kHz to 16 kHz low-pass: flat to about 6 kHz, well down by
/// 8 kHz (the new Nyquist), plenty for speech recognition.
const DECIMATE_TAPS: usize = 47;

/// Resamples 48 kHz to 16 kHz for speech recognition: windowed-sinc low-pass, keep every third sample.
pub struct Decimator {
    taps: [f32; DECIMATE_TAPS],
    history: Vec<f32>,
}

impl Decimator {
    pub fn new() -> Self {
        let mut taps = [0f32; DECIMATE_TAPS];
        let m = (DECIMATE_TAPS - 1) as f32 / 2.0;
        let fc = 7_000.0 / SAMPLE_RATE as f32;
        for (i, t) in taps.iter_mut().enumerate() {
            let x = i as f32 - m;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f32::consts::PI * fc * x).sin() / (std::f32::consts::PI * x)
            };
            let hamming =
                0.54 - 0.46 * (2.0 * std::f32::consts::PI * i as f32 / (DECIMATE_TAPS - 1) as f32).cos();
            *t = sinc * hamming;
        }
        let sum: f32 = taps.iter().sum();
        taps.iter_mut().for_each(|t| *t /= sum);
        Decimator { taps, history: vec![0.0; DECIMATE_TAPS - 1 + FRAME] }
    }

    /// One 20 ms frame in, 320 samples out.
    pub fn run(&mut self, pcm: &[f32; FRAME], out: &mut [f32; FRAME / 3]) {
        let keep = DECIMATE_TAPS - 1;
        self.history.copy_within(FRAME.., 0);
        self.history[keep..].copy_from_slice(pcm);
        for (k, o) in out.iter_mut().enumerate() {
            let start = 3 * k + 2;
            *o = self.taps.iter().zip(&self.history[start..start + DECIMATE_TAPS]).map(|(t, x)| t * x).sum();
        }
    }
}

impl Default for Decimator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimator_keeps_speech_and_removes_what_would_alias() {
        let level = |hz: f32| {
            let mut d = Decimator::new();
            let mut out = [0f32; FRAME / 3];
            let mut energy = 0.0;
            for f in 0..10 {
                let mut pcm = [0f32; FRAME];
                for (i, s) in pcm.iter_mut().enumerate() {
                    *s =
                        (2.0 * std::f32::consts::PI * hz * (f * FRAME + i) as f32 / SAMPLE_RATE as f32).sin();
                }
                d.run(&pcm, &mut out);
                energy = out.iter().map(|s| s * s).sum::<f32>() / out.len() as f32;
            }
            10.0 * energy.log10()
        };
        assert!((level(1000.0) - (-3.0)).abs() < 0.5, "1 kHz passes: {}", level(1000.0));
        assert!(level(12_000.0) < -40.0, "12 kHz (would alias to 4 kHz) is removed: {}", level(12_000.0));
    }
}
