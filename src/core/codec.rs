//! Opus encode and decode of 20 ms mono frames into caller-owned buffers, with concealment on loss.

use thiserror::Error;

/// Samples per second of every signal inside tolk (Opus's native rate, full band).
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame: the tick of the media plane.
pub const FRAME: usize = 960;
/// Largest Opus payload we produce or accept (RFC 6716 caps a frame at 1275 bytes).
pub const MAX_PAYLOAD: usize = 1275;
/// Bitrate of every encoded mix: transparent for speech and music in mono full band.
const BITRATE: i32 = 64_000;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    #[error("frame is {0} samples, only 20 ms frames ({FRAME} samples) are supported")]
    FrameSize(usize),
}

/// Decodes one source. Loss is concealed with Opus packet loss concealment.
pub struct Decoder {
    inner: opus::Decoder,
}

impl Decoder {
    pub fn new() -> Self {
        let inner = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)
            .expect("48 kHz mono is a valid Opus decoder configuration");
        Decoder { inner }
    }

    /// Decodes `payload` into `out`; `None` conceals a lost frame.
    pub fn decode(&mut self, payload: Option<&[u8]>, out: &mut [f32; FRAME]) -> Result<(), CodecError> {
        let n = self.inner.decode_float(payload.unwrap_or(&[]), out, false)?;
        if n != FRAME {
            return Err(CodecError::FrameSize(n));
        }
        Ok(())
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Encodes one mix, once per tick, for all its listeners.
pub struct Encoder {
    inner: opus::Encoder,
}

impl Encoder {
    pub fn new() -> Self {
        let mut inner = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Audio)
            .expect("48 kHz mono is a valid Opus encoder configuration");
        inner.set_bitrate(opus::Bitrate::Bits(BITRATE)).expect("64 kbit/s is within Opus's range");
        Encoder { inner }
    }

    /// Encodes one frame into `out`, returning the payload length.
    pub fn encode(&mut self, pcm: &[f32; FRAME], out: &mut [u8; MAX_PAYLOAD]) -> Result<usize, CodecError> {
        Ok(self.inner.encode_float(pcm, out)?)
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_a_tone_and_conceals_loss() {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut pcm = [0f32; FRAME];
        let mut out = [0f32; FRAME];
        let mut buf = [0u8; MAX_PAYLOAD];
        let mut energy = 0.0;
        for f in 0..10 {
            for (i, s) in pcm.iter_mut().enumerate() {
                let t = (f * FRAME + i) as f32 / SAMPLE_RATE as f32;
                *s = 0.5 * (2.0 * std::f32::consts::PI * 440.0 * t).sin();
            }
            let n = enc.encode(&pcm, &mut buf).unwrap();
            assert!(n > 0 && n < MAX_PAYLOAD);
            dec.decode(Some(&buf[..n]), &mut out).unwrap();
            energy = out.iter().map(|s| s * s).sum::<f32>() / FRAME as f32;
        }
        assert!(energy > 0.05, "decoded tone energy {energy}");
        dec.decode(None, &mut out).unwrap();
        assert!(out.iter().any(|s| s.abs() > 0.01), "concealment continues the tone");
    }
}
