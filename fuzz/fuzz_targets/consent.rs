//! STUN consent checks from settled listeners (RFC 7675): answered, or refused with an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tolk::core::wire::consent::Consent;

fuzz_target!(|data: &[u8]| {
    let consent = Consent::new("serverufrag", "a server ice password of 22+");
    let _ = consent.answer(data, "192.0.2.1:5000".parse().unwrap());
});
