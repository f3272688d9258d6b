//! Plain RTP: parses the header of a tapped floor packet, writes RTP packets, and holds one tick's outgoing datagrams in one reused buffer.

use std::net::SocketAddr;
use thiserror::Error;

/// Fixed RTP header length (RFC 3550 section 5.1).
pub const HEADER: usize = 12;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RtpError {
    #[error("datagram of {0} bytes is shorter than an RTP header")]
    Short(usize),
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    #[error("header extends past the datagram")]
    Truncated,
    #[error("payload type {got}, expected {want}")]
    PayloadType { got: u8, want: u8 },
    #[error("SSRC {got:#x}, expected {want:#x}")]
    Ssrc { got: u32, want: u32 },
    #[error("no payload")]
    Empty,
}

/// The parts of an RTP packet the floor tap uses.
#[derive(Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Parses an RTP packet (RFC 3550): CSRCs, a header extension and padding are skipped.
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, RtpError> {
    if buf.len() < HEADER {
        return Err(RtpError::Short(buf.len()));
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtpError::Version(version));
    }
    let padding = buf[0] & 0x20 != 0;
    let extension = buf[0] & 0x10 != 0;
    let csrcs = (buf[0] & 0x0f) as usize;
    let mut start = HEADER + 4 * csrcs;
    if extension {
        let words = buf.get(start + 2..start + 4).ok_or(RtpError::Truncated)?;
        start += 4 + 4 * u16::from_be_bytes([words[0], words[1]]) as usize;
    }
    let mut end = buf.len();
    if padding {
        let pad = *buf.last().expect("length checked above") as usize;
        end = end.checked_sub(pad).ok_or(RtpError::Truncated)?;
    }
    if start > end {
        return Err(RtpError::Truncated);
    }
    if start == end {
        return Err(RtpError::Empty);
    }
    Ok(Packet {
        payload_type: buf[1] & 0x7f,
        seq: u16::from_be_bytes([buf[2], buf[3]]),
        timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload: &buf[start..end],
    })
}

/// Writes a 12-byte RTP header followed by `payload` into `out`.
/// Appends one plain RTP packet to `out`.
pub fn write(out: &mut Vec<u8>, payload_type: u8, seq: u16, timestamp: u32, ssrc: u32, payload: &[u8]) {
    out.push(0x80);
    out.push(payload_type & 0x7f);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The datagrams of one tick, back to back in one buffer that keeps its capacity from tick
/// to tick, so sending a packet allocates nothing.
#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    /// Each datagram's destination and where it ends in `bytes`.
    packets: Vec<(SocketAddr, usize)>,
}

impl Batch {
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.packets.clear();
    }

    /// Adds the datagram `write` appends to the buffer.
    pub fn push(&mut self, to: SocketAddr, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.bytes);
        self.packets.push((to, self.bytes.len()));
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        let mut start = 0;
        self.packets.iter().map(move |&(to, end)| {
            let d = &self.bytes[start..end];
            start = end;
            (to, d)
        })
    }
}

/// Extends 32-bit RTP timestamps to 64 bits across wrap-arounds.
#[derive(Debug, Default)]
pub struct Unwrapper {
    last: Option<u64>,
}

impl Unwrapper {
    pub fn unwrap(&mut self, ts: u32) -> u64 {
        let ext = match self.last {
            None => ts as u64 + (1 << 32),
            Some(last) => {
                let base = last & !0xffff_ffff;
                let candidates = [base.wrapping_sub(1 << 32), base, base + (1 << 32)].map(|b| b + ts as u64);
                *candidates.iter().min_by_key(|c| c.abs_diff(last)).expect("three candidates")
            }
        };
        // Start one wrap up so a packet slightly older than the first never goes below zero.
        self.last = Some(self.last.map_or(ext, |l| l.max(ext)));
        ext
    }
}

/// The Opus payload type a RED payload's blocks are built with: the one browsers and str0m
/// offer. A listener that numbers Opus otherwise gets plain Opus.
pub const RED_INNER_PT: u8 = 111;

/// Writes an RFC 2198 RED payload: the previous frame (`timestamp_offset` earlier) as the one
/// redundant block, then `primary`. Without a previous frame (or one too long for the 10-bit
/// length field) it carries the primary alone.
pub fn write_red(out: &mut Vec<u8>, pt: u8, previous: Option<&[u8]>, timestamp_offset: u16, primary: &[u8]) {
    out.clear();
    let pt = pt & 0x7f;
    match previous.filter(|p| p.len() < 1024 && timestamp_offset < 1 << 14) {
        Some(p) => {
            // F=1, block PT, 14-bit timestamp offset, 10-bit block length.
            let word =
                (1u32 << 31) | (u32::from(pt) << 24) | (u32::from(timestamp_offset) << 10) | p.len() as u32;
            out.extend_from_slice(&word.to_be_bytes());
            out.push(pt);
            out.extend_from_slice(p);
        }
        None => out.push(pt),
    }
    out.extend_from_slice(primary);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_parses() {
        let mut buf = Vec::new();
        write(&mut buf, 111, 7, 960, 0xdead_beef, &[1, 2, 3]);
        let p = parse(&buf).unwrap();
        assert_eq!(
            p,
            Packet { payload_type: 111, seq: 7, timestamp: 960, ssrc: 0xdead_beef, payload: &[1, 2, 3] }
        );
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        let mut buf = vec![0xb1, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]; // padding, extension, 1 CSRC
        buf.extend_from_slice(&[0, 0, 0, 9]); // CSRC
        buf.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // one-word extension
        buf.extend_from_slice(&[42, 43]); // payload
        buf.extend_from_slice(&[0, 2]); // two bytes of padding
        assert_eq!(parse(&buf).unwrap().payload, &[42, 43]);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse(&[0x80; 5]), Err(RtpError::Short(5)));
        assert_eq!(parse(&[0x40; 20]), Err(RtpError::Version(1)));
        let mut ext = vec![0x90, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0xff, 0xff];
        assert_eq!(parse(&ext), Err(RtpError::Truncated));
        ext.truncate(12);
        ext[0] = 0x80;
        assert_eq!(parse(&ext), Err(RtpError::Empty));
    }

    #[test]
    fn unwraps_timestamps() {
        let mut u = Unwrapper::default();
        let a = u.unwrap(u32::MAX - 959);
        let b = u.unwrap(0);
        assert_eq!(b - a, 960);
        let c = u.unwrap(u32::MAX - 959);
        assert_eq!(c, a, "a late packet from before the wrap");
    }

    #[test]
    fn red_carries_the_previous_frame_then_the_primary() {
        let mut out = Vec::new();
        write_red(&mut out, 111, Some(&[1, 2, 3]), 960, &[9, 8]);
        // F=1 | PT 111, offset 960 (14 bits), length 3 (10 bits); then F=0 | PT 111; blocks.
        let word = u32::from_be_bytes(out[..4].try_into().unwrap());
        assert_eq!((word >> 31, (word >> 24) & 0x7f, (word >> 10) & 0x3fff, word & 0x3ff), (1, 111, 960, 3));
        assert_eq!(&out[4..], &[111, 1, 2, 3, 9, 8]);
        write_red(&mut out, 111, None, 960, &[9, 8]);
        assert_eq!(out, [111, 9, 8], "the primary alone");
    }
}
