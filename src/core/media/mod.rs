//! Per-frame audio work: the jitter buffer, the Opus codec, mixing and limiting, interpreters' levels, resampling for captions.

pub mod codec;
pub mod jitter;
pub mod level;
pub mod mixer;
pub mod resample;
