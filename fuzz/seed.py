#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/): well-formed examples of
what each parser sees on the network, from which the fuzzer mutates. Run from the repository root."""
import hashlib, hmac, json, os, struct, zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def stun_binding(username, password, controlling=True, use_candidate=False):
    """A STUN binding request (RFC 8489) with USERNAME, ICE attributes, MESSAGE-INTEGRITY, FINGERPRINT."""
    tid = bytes(range(12))
    attrs = b""

    def attr(t, v):
        pad = (4 - len(v) % 4) % 4
        return struct.pack("!HH", t, len(v)) + v + b"\0" * pad

    attrs += attr(0x0006, username.encode())
    attrs += attr(0x0024, struct.pack("!I", 1845501695))  # PRIORITY
    attrs += attr(0x802A if controlling else 0x8029, struct.pack("!Q", 7))
    if use_candidate:
        attrs += attr(0x0025, b"")
    head = lambda n: struct.pack("!HHI", 0x0001, n, 0x2112A442) + tid
    mi_len = len(attrs) + 24
    mac = hmac.new(password.encode(), head(mi_len) + attrs, hashlib.sha1).digest()
    attrs += attr(0x0008, mac)
    fp_len = len(attrs) + 8
    crc = (zlib.crc32(head(fp_len) + attrs) ^ 0x5354554E) & 0xFFFFFFFF
    attrs += attr(0x8028, struct.pack("!I", crc))
    return head(len(attrs)) + attrs


def rtp(pt, seq, ts, ssrc, payload):
    return struct.pack("!BBHII", 0x80, pt, seq, ts, ssrc) + payload


CHROME_OFFER = "\r\n".join([
    "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
    "a=extmap-allow-mixed", "a=msid-semantic: WMS",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Hn3e", "a=ice-pwd:RmBTPXyZ6Hq6k2L3Fj9k2vEo", "a=ice-options:trickle",
    "a=fingerprint:sha-256 5C:1F:8A:0B:6D:39:3E:92:1A:55:0E:6F:CC:7B:4D:80:21:3A:1E:9F:0A:77:12:6E:5D:41:08:9A:B2:33:C4:10",
    "a=setup:actpass", "a=mid:0", "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid", "a=recvonly", "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2", "a=rtcp-fb:111 transport-cc", "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:63 red/48000/2", "a=fmtp:63 111/111", "a=rtpmap:9 G722/8000", "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000", "a=rtpmap:13 CN/8000", "a=rtpmap:110 telephone-event/48000",
    "a=rtpmap:126 telephone-event/8000", "",
])
SEND_OFFER = CHROME_OFFER.replace("a=recvonly", "a=sendonly").replace(
    "a=mid:0", "a=mid:0\r\na=msid:- 7b0c\r\na=ssrc:3735928559 cname:tolk")

# Signalling messages, one per type.
for i, msg in enumerate([
    {"type": "join", "token": "eyJhbGciOiJIUzI1NiJ9.e30.x", "publish": "es", "resume": "k1"},
    {"type": "offer", "sdp": CHROME_OFFER},
    {"type": "select", "channel": "es", "only": True},
    {"type": "select", "channel": None},
    {"type": "input", "channel": "fr"},
    {"type": "publish", "channel": "en"},
    {"type": "handover", "action": "ready", "channel": "es"},
    {"type": "handover", "action": "take"},
    {"type": "assign", "channel": "es", "peer": 42},
    {"type": "mute", "muted": True},
    {"type": "slow_down"},
    {"type": "floor_return", "channel": "es"},
    {"type": "captions", "source": None, "on": True},
]):
    put("signal", f"msg{i:02}", json.dumps(msg))

# SDP offers (what the signalling offer and the WHIP and WHEP bodies carry): first byte 0 for
# a listener, 1 for a floor speaker.
put("offer", "listener-chrome", b"\0" + CHROME_OFFER.encode())
put("offer", "floor-chrome", b"\1" + SEND_OFFER.encode())
put("offer", "two-sections", b"\0" + (CHROME_OFFER + CHROME_OFFER.split("\r\n", 7)[-1]).encode())

# Tokens: a well-formed JWT of another key, and pieces of one.
put("token", "jwt", "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJyb29tIjoiciIsInJvbGUiOiJsaXN0ZW5lciIsIm5hbWUiOiJMZW5hIiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2lnbmF0dXJl")
put("token", "alg-none", "eyJhbGciOiJub25lIn0.eyJyb29tIjoiciJ9.")

# Consent checks: the target's own credentials (valid) and another password (refused).
put("consent", "valid", stun_binding("serverufrag:client", "a server ice password of 22+"))
put("consent", "wrong-password", stun_binding("serverufrag:client", "guessed"))
put("consent", "use-candidate", stun_binding("serverufrag:client", "a server ice password of 22+", use_candidate=True))

# Datagrams: first byte picks the source port; then STUN, DTLS, RTP, RTCP.
put("datagram", "stun", b"\3" + stun_binding("nobody:client", "guessed", use_candidate=True))
put("datagram", "dtls-hello", b"\1" + bytes([22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
put("datagram", "rtp", b"\2" + rtp(111, 1, 960, 0x1234, b"\xf8\xff\xfe"))
put("datagram", "rtcp-rr", b"\2" + bytes([0x81, 201, 0, 7]) + bytes(28))

# Tap: runs of [length, sender (bit 7: tick after), packet] with Opus packets (silence and a
# short CELT frame), a reordered pair, a new SSRC from another sender.
def run(*packets):
    return b"".join(bytes([len(p), frm]) + p for frm, p in packets)

silence = b"\xf8\xff\xfe"
put("tap", "steady", run(*[(0x80, rtp(111, n, n * 960, 7, silence)) for n in range(5)]))
put("tap", "reordered", run((0x80, rtp(111, 2, 1920, 7, silence)), (0x80, rtp(111, 1, 960, 7, silence))))
put("tap", "new-sender", run((0x80, rtp(111, 1, 960, 7, silence)), (0x81, rtp(111, 9, 90000, 8, b"\x78\x01\x02"))))
put("tap", "wrong-pt", run((0x80, rtp(0, 1, 960, 7, silence))))
