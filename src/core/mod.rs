//! The sans-IO media engine: no sockets, no clock, no threads. Inputs carry `now`; outputs are polled.

pub mod codec;
pub mod control;
pub mod engine;
pub mod jitter;
pub mod mixer;
pub mod room;
pub mod rtp;
pub mod settled;
pub mod srtp;
