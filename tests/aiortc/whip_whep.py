"""WHIP and WHEP with aiortc, a WebRTC client tolk did not write.

Publishes a tone over WHIP, plays a channel over WHEP, and prints what the
player heard as JSON: the level of a few frequencies in dBFS, and the status
codes of the DELETEs.

Usage: python3 whip_whep.py <base-url> <whip-token> <whep-token> <tone-hz> [channel]

With SECONDS_TO_LISTEN=n in the environment, the player listens n seconds (default 3) and also
reports the quiet runs inside the tone: stretches of 20 ms frames in which the tone is
more than 20 dB under its level, after the first second, and gaps in the frames' times.

With SRTP_PROFILE=aes-cm in the environment, both peers offer only
SRTP_AES128_CM_SHA1_80 (RFC 3711's AES counter mode with HMAC-SHA1), so the
server's packets are checked in that profile too (browsers pick AES-GCM).
"""

import asyncio
import fractions
import json
import sys
import time
import urllib.request

import os

import aioice.ice
import aiortc.rtcdtlstransport
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

# aioice leaves out 127.0.0.1; the tests run on loopback only.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

if os.environ.get("SRTP_PROFILE") == "aes-cm":
    aiortc.rtcdtlstransport.SRTP_PROFILES[:] = [aiortc.rtcdtlstransport.SRTP_AES128_CM_SHA1_80]

RATE = 48000
FRAME = 960
SECONDS = int(os.environ.get("SECONDS_TO_LISTEN", "3"))


class Tone(MediaStreamTrack):
    """A sine tone at -10.5 dBFS, paced in real time, 20 ms a frame."""

    kind = "audio"

    def __init__(self, hz):
        super().__init__()
        self.hz = hz
        self.n = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.time()
        wait = self.start + self.n * FRAME / RATE - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(FRAME) + self.n * FRAME) / RATE
        pcm = (0.3 * np.sin(2 * np.pi * self.hz * t) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.n * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        self.n += 1
        return frame


def http(method, url, token=None, body=None, content_type=None):
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


async def negotiate(pc, url, token):
    await pc.setLocalDescription(await pc.createOffer())
    status, headers, answer = await asyncio.to_thread(
        http, "POST", url, token, pc.localDescription.sdp.encode(), "application/sdp"
    )
    if status != 201:
        raise SystemExit(f"{url}: {status} {answer}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return headers["Location"]


def quiet_runs(frames, hz):
    """Runs (ms) of consecutive frames in which the tone is 20 dB under its median level."""
    levels = [level_db(f, hz) for f in frames]
    floor = float(np.median(levels)) - 20
    runs, run = [], 0
    for lv in levels:
        if lv < floor:
            run += 20
        elif run:
            runs.append(run)
            run = 0
    return runs + ([run] if run else [])


def level_db(pcm, hz):
    t = np.arange(len(pcm)) / RATE
    c = np.abs(np.dot(pcm, np.exp(-2j * np.pi * hz * t))) * 2 / len(pcm)
    return float(20 * np.log10(c + 1e-9))


async def main(base, whip_token, whep_token, hz, channel):
    publisher = RTCPeerConnection()
    publisher.addTransceiver(Tone(hz), direction="sendonly")
    whip_resource = await negotiate(publisher, f"{base}/whip", whip_token)

    player = RTCPeerConnection()
    player.addTransceiver("audio", direction="recvonly")
    received = []
    times = []
    done = asyncio.Event()

    @player.on("track")
    def on_track(track):
        async def read():
            while len(received) < 50 * SECONDS:
                frame = await track.recv()
                pcm = frame.to_ndarray().astype(np.float32) / 32768
                channels = len(frame.layout.channels)
                received.append(pcm.reshape(-1, channels).mean(axis=1) if channels > 1 else pcm.reshape(-1))
                times.append(frame.pts * frame.time_base)
            done.set()

        asyncio.ensure_future(read())

    query = f"?channel={channel}" if channel else ""
    whep_resource = await negotiate(player, f"{base}/whep{query}", whep_token)
    try:
        await asyncio.wait_for(done.wait(), 20 + SECONDS)
    except asyncio.TimeoutError:
        raise SystemExit(f"only {len(received)} frames in {20 + SECONDS} s")
    pcm = np.concatenate(received[50:])  # after the first second
    deletes = [
        (await asyncio.to_thread(http, "DELETE", base + r))[0] for r in (whip_resource, whep_resource)
    ]
    gone = (await asyncio.to_thread(http, "DELETE", base + whip_resource))[0]
    await publisher.close()
    await player.close()
    print(
        json.dumps(
            {
                "levels": {str(f): level_db(pcm, f) for f in (440, 880, 1320)},
                "deletes": deletes,
                "delete_again": gone,
                "frames": len(received),
                "quiet_runs_ms": quiet_runs(received[50:], hz),
                "gaps_ms": [
                    round(float(b - a) * 1000) - 20 for a, b in zip(times[50:], times[51:]) if b - a > 0.025
                ],
            }
        )
    )


if __name__ == "__main__":
    base, whip_token, whep_token, hz = sys.argv[1:5]
    channel = sys.argv[5] if len(sys.argv) > 5 else None
    asyncio.run(asyncio.wait_for(main(base, whip_token, whep_token, float(hz), channel), 60))
