//! The sans-IO media engine: no sockets, no clock, no threads. Inputs carry `now`; outputs are polled.
//!
//! Depends only on [`crate::protocol`] (the wire contract) and its own types.
#![forbid(unsafe_code)]

pub mod engine;
pub mod media;
pub mod room;
pub mod spec;
pub mod wire;
