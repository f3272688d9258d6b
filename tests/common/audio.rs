//! Levels of received audio: a tone's amplitude (Goertzel) and RMS, in dB relative to full scale.

/// Amplitude of `hz` in `pcm`, in dB relative to full scale (Goertzel).
pub fn tone_db(pcm: &[f32], hz: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * hz / 48_000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0f32, 0f32);
    for &x in pcm {
        let s0 = x + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - c * s1 * s2;
    let amplitude = 2.0 * power.max(0.0).sqrt() / pcm.len() as f32;
    20.0 * (amplitude + 1e-9).log10()
}

pub fn rms_db(pcm: &[f32]) -> f32 {
    let ms = pcm.iter().map(|s| s * s).sum::<f32>() / pcm.len().max(1) as f32;
    10.0 * (ms + 1e-12).log10()
}
