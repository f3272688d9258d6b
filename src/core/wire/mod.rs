//! What goes on the wire per packet: plain RTP, the SRTP step of the fan-out, consent answers for settled listeners.

pub mod consent;
pub mod rtp;
pub mod srtp;
