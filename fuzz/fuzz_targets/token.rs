//! Invitation tokens as a page or a WHIP client sends them: verified, or refused with an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tolk::token::Keys;

static KEYS: OnceLock<Keys> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let keys = KEYS.get_or_init(|| Keys::new(b"a fuzzing secret of some length"));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keys.verify(text);
    }
});
