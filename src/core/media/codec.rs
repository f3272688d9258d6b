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

    /// Rebuilds a lost frame from the in-band FEC of the packet after it (RFC 6716 §2.1.7);
    /// where that packet carries none, Opus conceals as for a plain loss.
    pub fn decode_fec(&mut self, following: &[u8], out: &mut [f32; FRAME]) -> Result<(), CodecError> {
        let n = self.inner.decode_float(following, out, true)?;
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
        // Restricted low delay: CELT only, 2.5 ms of lookahead instead of 6.5 ms. At 64 kbit/s
        // Opus picks CELT for speech and music anyway, so the 4 ms come at no cost in quality.
        let mut inner = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::LowDelay)
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

    #[test]
    fn an_onset_comes_out_within_three_milliseconds() {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let onset = 5 * FRAME + 100;
        let (mut pcm, mut out, mut buf) = ([0f32; FRAME], [0f32; FRAME], [0u8; MAX_PAYLOAD]);
        let mut heard = None;
        for f in 0..10 {
            for (i, s) in pcm.iter_mut().enumerate() {
                let n = f * FRAME + i;
                *s = if n < onset {
                    0.0
                } else {
                    0.5 * (2.0 * std::f32::consts::PI * (n as f32) / 48.0).sin()
                };
            }
            let len = enc.encode(&pcm, &mut buf).unwrap();
            dec.decode(Some(&buf[..len]), &mut out).unwrap();
            if heard.is_none() {
                heard = out.iter().position(|s| s.abs() > 0.1).map(|i| f * FRAME + i);
            }
        }
        let delay = heard.expect("the tone is decoded") as f32 - onset as f32;
        // Opus's restricted low delay mode looks 2.5 ms ahead (120 samples); its default 6.5 ms.
        assert!((0.0..144.0).contains(&delay), "the codec delays an onset by {delay} samples");
    }
}
