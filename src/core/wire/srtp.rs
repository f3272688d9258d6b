//! Owns the SRTP step for the packets we send: keys taken from each peer's DTLS handshake, then per packet one header write and one encryption into a caller-owned buffer.
//!
//! str0m runs ICE, DTLS and the receiving side of every session. Sending through its
//! media writer costs a pacer, a send queue and a few allocations per packet, per
//! listener; a channel's listeners all get the same payload, so tolk writes their
//! packets itself. The keying material comes from a thin wrapper around str0m's own
//! DTLS provider, which copies what the handshake exports (RFC 5764) and passes
//! everything through unchanged. Key derivation follows RFC 3711 §4.3 (as str0m's does),
//! AES-GCM packets RFC 7714, AES-CM with HMAC-SHA1 RFC 3711; the ciphers are str0m's.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
    SrtpProfile,
};
use str0m::crypto::{
    AeadAes128Gcm, Aes128CmSha1_80, Aes128CmSha1_80Cipher, CryptoError, CryptoProvider, Sha1HmacProvider,
    SrtpProvider,
};

/// What one DTLS handshake exported for SRTP.
pub struct Material {
    profile: SrtpProfile,
    bytes: Vec<u8>,
    /// Whether we were the DTLS client: it decides which half of the material is ours.
    active: bool,
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material").field("profile", &self.profile).finish_non_exhaustive()
    }
}

/// Filled once, when the handshake completes.
pub type KeySlot = Arc<OnceLock<Material>>;

thread_local! {
    /// The slot of the DTLS instance most recently created on this thread.
    static BORN: RefCell<Option<KeySlot>> = const { RefCell::new(None) };
}

/// str0m's default crypto, whose DTLS instances report their SRTP keys.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    static TAP: KeyTap = KeyTap;
    PROVIDER.get_or_init(|| Arc::new(CryptoProvider { dtls_provider: &TAP, ..base().clone() })).clone()
}

/// The key slot of the `Rtc` just built on this thread with [`provider`] (str0m creates
/// its DTLS instance while building), or `None` if none was built since the last call.
pub fn take_slot() -> Option<KeySlot> {
    BORN.with(|b| b.borrow_mut().take())
}

/// HMAC-SHA1 from the same crypto (STUN message integrity).
pub fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    base().sha1_hmac_provider.sha1_hmac(key, parts)
}

fn base() -> &'static CryptoProvider {
    static BASE: OnceLock<CryptoProvider> = OnceLock::new();
    BASE.get_or_init(str0m::crypto::from_feature_flags)
}

#[derive(Debug)]
struct KeyTap;

impl DtlsProvider for KeyTap {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        base().dtls_provider.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let inner = base().dtls_provider.new_dtls(cert, now, version, mtu)?;
        let slot = KeySlot::default();
        BORN.with(|b| *b.borrow_mut() = Some(slot.clone()));
        Ok(Box::new(Tapped { inner, slot }))
    }
}

#[derive(Debug)]
struct Tapped {
    inner: Box<dyn DtlsInstance>,
    slot: KeySlot,
}

impl DtlsInstance for Tapped {
    fn set_active(&mut self, active: bool) {
        self.inner.set_active(active)
    }
    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }
    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let out = self.inner.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(km, profile) = &out {
            let material = Material { profile: *profile, bytes: km.to_vec(), active: self.inner.is_active() };
            let _ = self.slot.set(material);
        }
        out
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }
    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.inner.send_application_data(data)
    }
    fn is_active(&self) -> bool {
        self.inner.is_active()
    }
    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }
    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }
    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}

/// One outgoing RTP stream's header fields.
#[derive(Debug, Clone, Copy)]
pub struct Track {
    pub ssrc: u32,
    pub payload_type: u8,
    /// Whether the payloads are RED (RFC 2198) around Opus rather than Opus.
    pub red: bool,
    /// The negotiated id of the MID header extension and the MID, if the peer uses it.
    pub mid: Option<(u8, [u8; 15], u8)>,
}

impl Track {
    pub fn with_mid(ssrc: u32, payload_type: u8, mid: Option<(u8, &str)>) -> Track {
        let mid =
            mid.filter(|(id, m)| (1..=14).contains(id) && !m.is_empty() && m.len() <= 15).map(|(id, m)| {
                let mut b = [0u8; 15];
                b[..m.len()].copy_from_slice(m.as_bytes());
                (id, b, m.len() as u8)
            });
        Track { ssrc, payload_type, red: false, mid }
    }
}

enum Cipher {
    CmSha1 {
        enc: Box<dyn Aes128CmSha1_80Cipher>,
        salt: [u8; 14],
        auth: [u8; 20],
    },
    /// Either AES-GCM profile (RFC 7714): the key is held here, one pointer from aws-lc's
    /// context, so the fan-out reaches a listener's key schedule in one load, not three.
    Gcm {
        key: LessSafeKey,
        salt: [u8; 12],
    },
}

/// Writes one peer's outgoing SRTP packets.
pub struct Sender {
    cipher: Cipher,
    hmac: &'static dyn Sha1HmacProvider,
    track: Track,
    /// The SRTP packet index: rollover count above, sequence number in the low 16 bits.
    index: u64,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("track", &self.track).field("index", &self.index).finish()
    }
}

/// Bytes an encrypted packet adds after the payload, at most.
pub const OVERHEAD: usize = 16;
/// aws-lc-rs' counter mode may want scratch room past the ciphertext.
const CTR_SCRATCH: usize = 15;

const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;

impl Sender {
    /// Our sending keys from the handshake's material; `first_seq` starts the sequence.
    /// `None` for a profile this module does not know (str0m negotiates only the three here).
    pub fn new(material: &Material, track: Track, first_seq: u16) -> Option<Sender> {
        let srtp = base().srtp_provider;
        let cipher = match material.profile {
            SrtpProfile::AES128_CM_SHA1_80 => {
                let (master, salt) = halves::<16, 14>(material);
                Cipher::CmSha1 {
                    enc: srtp
                        .aes_128_cm_sha1_80()
                        .create_cipher(derive(srtp, &master, &salt, LABEL_RTP_KEY), true),
                    salt: derive(srtp, &master, &salt, LABEL_RTP_SALT),
                    auth: derive(srtp, &master, &salt, LABEL_RTP_AUTH),
                }
            }
            SrtpProfile::AEAD_AES_128_GCM => {
                let (master, salt) = halves::<16, 12>(material);
                let key: [u8; 16] = derive(srtp, &master, &salt, LABEL_RTP_KEY);
                let key = UnboundKey::new(&AES_128_GCM, &key).expect("a 16-byte key fits AES-128-GCM");
                Cipher::Gcm { key: LessSafeKey::new(key), salt: derive(srtp, &master, &salt, LABEL_RTP_SALT) }
            }
            SrtpProfile::AEAD_AES_256_GCM => {
                let (master, salt) = halves::<32, 12>(material);
                let key: [u8; 32] = derive(srtp, &master, &salt, LABEL_RTP_KEY);
                let key = UnboundKey::new(&AES_256_GCM, &key).expect("a 32-byte key fits AES-256-GCM");
                Cipher::Gcm { key: LessSafeKey::new(key), salt: derive(srtp, &master, &salt, LABEL_RTP_SALT) }
            }
            _ => return None,
        };
        Some(Sender { cipher, hmac: base().sha1_hmac_provider, track, index: first_seq as u64 })
    }

    /// Whether this peer takes RED payloads.
    pub fn red(&self) -> bool {
        self.track.red
    }

    /// Appends one encrypted RTP packet carrying `payload` to `out`.
    pub fn seal(&mut self, timestamp: u32, payload: &[u8], out: &mut Vec<u8>) {
        let seq = self.index as u16;
        let roc = (self.index >> 16) as u32;
        let start = out.len();
        let t = &self.track;
        out.push(if t.mid.is_some() { 0x90 } else { 0x80 });
        out.push(t.payload_type & 0x7f);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&t.ssrc.to_be_bytes());
        if let Some((id, mid, len)) = &t.mid {
            // RFC 8285 one-byte header extension with a single element, padded to 32 bits.
            let words = (1 + *len as usize).div_ceil(4);
            out.extend_from_slice(&[0xBE, 0xDE]);
            out.extend_from_slice(&(words as u16).to_be_bytes());
            out.push((id << 4) | (len - 1));
            out.extend_from_slice(&mid[..*len as usize]);
            out.resize(out.len() + words * 4 - 1 - *len as usize, 0);
        }
        let header = out.len() - start;
        let body = start + header;
        match &mut self.cipher {
            Cipher::Gcm { key, salt } => {
                // The IV is the same for both key sizes (RFC 7714 §8.1).
                let nonce = Nonce::assume_unique_for_key(AeadAes128Gcm::rtp_iv(*salt, t.ssrc, roc, seq));
                out.extend_from_slice(payload);
                let (head, body) = out[start..].split_at_mut(header);
                let tag = key
                    .seal_in_place_separate_tag(nonce, Aad::from(&*head), body)
                    .expect("an RTP packet is far below AES-GCM's length limit");
                out.extend_from_slice(tag.as_ref());
            }
            Cipher::CmSha1 { enc, salt, auth } => {
                let iv = Aes128CmSha1_80::rtp_iv(*salt, t.ssrc, self.index);
                out.resize(body + payload.len() + CTR_SCRATCH, 0);
                enc.encrypt(&iv, payload, &mut out[body..]).expect("buffer sized for counter mode");
                let end = body + payload.len();
                out.truncate(end + Aes128CmSha1_80::HMAC_TAG_LEN);
                let hmac = self.hmac;
                Aes128CmSha1_80::rtp_hmac(
                    |k, p| hmac.sha1_hmac(k, p),
                    auth,
                    &mut out[start..],
                    self.index,
                    header + payload.len(),
                );
            }
        }
        self.index += 1;
    }
}

/// Our master key and salt: the client's half if we were the DTLS client (RFC 5764 §4.2).
fn halves<const K: usize, const S: usize>(m: &Material) -> ([u8; K], [u8; S]) {
    let (k, s) = if m.active { (0, 2 * K) } else { (K, 2 * K + S) };
    let mut key = [0; K];
    let mut salt = [0; S];
    key.copy_from_slice(&m.bytes[k..k + K]);
    salt.copy_from_slice(&m.bytes[s..s + S]);
    (key, salt)
}

/// RFC 3711 §4.3.1 key derivation (key derivation rate 0, index 0): AES in counter mode over
/// the master salt with the label in its seventh byte.
fn derive<const N: usize>(srtp: &dyn SrtpProvider, master: &[u8], salt: &[u8], label: u8) -> [u8; N] {
    let mut input = [0u8; 16];
    input[..salt.len()].copy_from_slice(salt);
    input[7] ^= label;
    let mut out = [0u8; N];
    let mut block = [0u8; 32];
    for (round, chunk) in out.chunks_mut(16).enumerate() {
        input[14..].copy_from_slice(&(round as u16).to_be_bytes());
        match master.len() {
            16 => srtp.srtp_aes_128_ecb_round(master, &input, &mut block),
            _ => srtp.srtp_aes_256_ecb_round(master, &input, &mut block),
        }
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::crypto::AeadAes256Gcm;

    fn material(profile: SrtpProfile, active: bool) -> Material {
        let len = match profile {
            SrtpProfile::AES128_CM_SHA1_80 => 16 * 2 + 14 * 2,
            SrtpProfile::AEAD_AES_128_GCM => 16 * 2 + 12 * 2,
            SrtpProfile::AEAD_AES_256_GCM => 32 * 2 + 12 * 2,
            _ => unreachable!("only the three profiles are tested"),
        };
        Material { profile, bytes: (0..len as u8).map(|b| b.wrapping_mul(37)).collect(), active }
    }

    /// RFC 3711 appendix B.3: the session key, salt and auth key from the given master key and salt.
    #[test]
    fn key_derivation_matches_rfc_3711() {
        let hex = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        let master = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let srtp = base().srtp_provider;
        let key: [u8; 16] = derive(srtp, &master, &salt, LABEL_RTP_KEY);
        let s: [u8; 14] = derive(srtp, &master, &salt, LABEL_RTP_SALT);
        let auth: [u8; 20] = derive(srtp, &master, &salt, LABEL_RTP_AUTH);
        assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        assert_eq!(s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        assert_eq!(auth.to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    /// Our packets open with the receiving ciphers and the far end's view of the keys, for
    /// every profile, across a sequence-number rollover (where the rollover count enters the IV).
    #[test]
    fn packets_open_at_the_far_end_for_every_profile() {
        let srtp = base().srtp_provider;
        for profile in
            [SrtpProfile::AES128_CM_SHA1_80, SrtpProfile::AEAD_AES_128_GCM, SrtpProfile::AEAD_AES_256_GCM]
        {
            // We are the DTLS server; the far end (the client) reads our half of the material.
            let ours = material(profile, false);
            let mut tx =
                Sender::new(&ours, Track::with_mid(0x1234_5678, 111, Some((4, "0"))), 65_535).unwrap();
            let payloads: [&[u8]; 2] = [b"opus frame one", b"opus frame two, a little longer"];
            let mut packets = Vec::new();
            for (i, p) in payloads.iter().enumerate() {
                let mut out = Vec::new();
                tx.seal(960 * (i as u32 + 1), p, &mut out);
                packets.push(out);
            }
            for (i, (packet, payload)) in packets.iter().zip(payloads).enumerate() {
                let index = 65_535 + i as u64;
                let (roc, seq) = ((index >> 16) as u32, index as u16);
                assert_eq!(&packet[..2], &[0x90, 111], "{profile:?}: version, extension bit, payload type");
                assert_eq!(u16::from_be_bytes([packet[2], packet[3]]), seq);
                assert_eq!(&packet[12..20], &[0xBE, 0xDE, 0, 1, 0x40, b'0', 0, 0], "MID extension");
                assert!(
                    !packet.windows(payload.len()).any(|w| w == payload),
                    "{profile:?}: payload in the clear"
                );
                let (head, body) = packet.split_at(20);
                let mut clear = vec![0u8; body.len() + CTR_SCRATCH];
                let n = match profile {
                    SrtpProfile::AES128_CM_SHA1_80 => {
                        let (master, salt) = halves::<16, 14>(&ours);
                        let key: [u8; 16] = derive(srtp, &master, &salt, LABEL_RTP_KEY);
                        let s: [u8; 14] = derive(srtp, &master, &salt, LABEL_RTP_SALT);
                        let auth: [u8; 20] = derive(srtp, &master, &salt, LABEL_RTP_AUTH);
                        let (signed, tag) = packet.split_at(packet.len() - 10);
                        let hmac = base().sha1_hmac_provider;
                        assert_eq!(&hmac.sha1_hmac(&auth, &[signed, &roc.to_be_bytes()])[..10], tag);
                        let iv = Aes128CmSha1_80::rtp_iv(s, 0x1234_5678, index);
                        let mut dec = srtp.aes_128_cm_sha1_80().create_cipher(key, false);
                        dec.decrypt(&iv, &body[..body.len() - 10], &mut clear).unwrap();
                        body.len() - 10
                    }
                    SrtpProfile::AEAD_AES_128_GCM => {
                        let (master, salt) = halves::<16, 12>(&ours);
                        let key: [u8; 16] = derive(srtp, &master, &salt, LABEL_RTP_KEY);
                        let iv = AeadAes128Gcm::rtp_iv(
                            derive(srtp, &master, &salt, LABEL_RTP_SALT),
                            0x1234_5678,
                            roc,
                            seq,
                        );
                        let mut dec = srtp.aead_aes_128_gcm().create_cipher(key, false);
                        dec.decrypt(&iv, &[head], body, &mut clear).expect("tag verifies")
                    }
                    SrtpProfile::AEAD_AES_256_GCM => {
                        let (master, salt) = halves::<32, 12>(&ours);
                        let key: [u8; 32] = derive(srtp, &master, &salt, LABEL_RTP_KEY);
                        let iv = AeadAes256Gcm::rtp_iv(
                            derive(srtp, &master, &salt, LABEL_RTP_SALT),
                            0x1234_5678,
                            roc,
                            seq,
                        );
                        let mut dec = srtp.aead_aes_256_gcm().create_cipher(key, false);
                        dec.decrypt(&iv, &[head], body, &mut clear).expect("tag verifies")
                    }
                    _ => unreachable!("only the three profiles are tested"),
                };
                assert_eq!(&clear[..n], payload, "{profile:?} packet {i}");
            }
        }
    }

    /// The client takes the first key and salt, the server the second (RFC 5764 §4.2).
    #[test]
    fn each_side_takes_its_own_half() {
        let client = halves::<16, 12>(&material(SrtpProfile::AEAD_AES_128_GCM, true));
        let server = halves::<16, 12>(&material(SrtpProfile::AEAD_AES_128_GCM, false));
        let m = material(SrtpProfile::AEAD_AES_128_GCM, true).bytes;
        assert_eq!((&client.0[..], &client.1[..]), (&m[0..16], &m[32..44]));
        assert_eq!((&server.0[..], &server.1[..]), (&m[16..32], &m[44..56]));
    }
}
