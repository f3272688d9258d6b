// WHIP and WHEP from Chromium with nothing but fetch and RTCPeerConnection (no tolk page code):
// one browser publishes its fake microphone as the floor over WHIP, a second page plays the
// floor over WHEP; prints the player's loudest frequency and the status codes.
// Usage: node whip.mjs <base-url> <whip-token> <whep-token> <wav>
import { launch, open, spectrum, deadline } from './lib.mjs';

const [base, whipToken, whepToken, wav] = process.argv.slice(2);
const timer = deadline(90);
const browser = await launch(wav);
try {
  const publisher = await open(browser, `${base}/health`, 'whip');
  const whip = await publisher.evaluate(async (token) => {
    const mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    const pc = new RTCPeerConnection();
    pc.addTransceiver(mic.getAudioTracks()[0], { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const r = await fetch('/whip', { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${token}` }, body: pc.localDescription.sdp });
    const answer = await r.text();
    if (r.status !== 201) throw new Error(`WHIP ${r.status}: ${answer}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    window.pc = pc;
    return { status: r.status, location: r.headers.get('location') };
  }, whipToken);
  console.error('WHIP', JSON.stringify(whip));

  const player = await open(browser, `${base}/health`, 'whep');
  const whepStatus = await player.evaluate(async (token) => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const track = new Promise((ok) => (pc.ontrack = (e) => ok(e.track)));
    await pc.setLocalDescription(await pc.createOffer());
    const r = await fetch('/whep', { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${token}` }, body: pc.localDescription.sdp });
    const answer = await r.text();
    if (r.status !== 201) throw new Error(`WHEP ${r.status}: ${answer}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    const stream = new MediaStream([await track]);
    const audio = new Audio();
    audio.srcObject = stream;
    audio.play().catch(() => {});
    const ctx = new AudioContext({ sampleRate: 48000 });
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 4096;
    analyser.smoothingTimeConstant = 0;
    ctx.createMediaStreamSource(stream).connect(analyser);
    window.tolk = { analyser };
    return r.status;
  }, whepToken);
  await player.waitForTimeout(2500);
  const heard = await spectrum(player);
  const deleteStatus = await publisher.evaluate(async (loc) => (await fetch(loc, { method: 'DELETE' })).status, whip.location);
  console.log(JSON.stringify({ ...heard, whipStatus: whip.status, whepStatus, deleteStatus }));
} finally {
  clearTimeout(timer);
  await browser.close();
}
