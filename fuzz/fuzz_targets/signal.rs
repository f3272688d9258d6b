//! Signalling messages as they come off a WebSocket: parsed, or refused with an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tolk::protocol::parse(text);
    }
});
