// Real-browser check: an interpreter page with a fake microphone (a WAV tone) and a
// listener page on that channel, in headless Chromium; prints what the listener hears.
// Usage: node e2e.mjs <interpreter-url> <listener-url> <wav> <channel> [screenshot-dir] [stay-seconds]
// With stay-seconds, the listener stays that long and is heard again: `later` holds the
// second reading and the state of its connection. With TOLK_RELAY=1 in the environment, the
// listener's page may use only relayed (TURN) candidates. `path` says how its media came.
import { launch, open, press, spectrum, deadline } from './lib.mjs';

const [interpreterUrl, listenerUrl, wav, channel, shots, stay] = process.argv.slice(2);
const timer = deadline(90 + Number(stay || 0));
const browser = await launch(wav);
try {
  const interpreter = await open(browser, interpreterUrl, 'interpreter');
  await interpreter.click('#start');
  await interpreter.waitForFunction(() => window.tolk?.live === true, null, { timeout: 20_000 });
  console.error('interpreter is live');

  const listener = await browser.newPage();
  listener.on('console', (m) => console.error('[listener]', m.text()));
  if (process.env.TOLK_RELAY) {
    // As a page on a network that reaches the media port only through a relay would.
    await listener.addInitScript(() => {
      const Native = window.RTCPeerConnection;
      window.RTCPeerConnection = function (config = {}) {
        return new Native({ ...config, iceTransportPolicy: 'relay' });
      };
      window.RTCPeerConnection.prototype = Native.prototype;
    });
  }
  await listener.goto(listenerUrl);
  await listener.click('#start');
  await listener.waitForFunction(() => !!window.tolk?.analyser, null, { timeout: 20_000 });
  await press(listener, `button[data-channel="${channel}"]`);
  console.error(`listener selected ${channel}`);
  const sent = () => interpreter.evaluate(async () => {
    const stats = [...(await window.tolk.session.pc.getStats()).values()];
    const out = stats.find((s) => s.type === 'outbound-rtp' && s.kind === 'audio');
    const codec = stats.find((s) => s.id === out?.codecId);
    return { bytes: out?.bytesSent ?? 0, at: performance.now(), codec: codec?.mimeType, fmtp: codec?.sdpFmtpLine };
  });
  const received = () => listener.evaluate(async () => {
    const stats = [...(await window.tolk.session.pc.getStats()).values()];
    const inb = stats.find((s) => s.type === 'inbound-rtp' && s.kind === 'audio');
    const codec = stats.find((s) => s.id === inb?.codecId);
    return `${codec?.mimeType}; ${inb?.packetsReceived} packets, ${inb?.packetsLost} lost`;
  });
  const before = await sent();
  await listener.waitForTimeout(2500);
  const after = await sent();
  const result = await spectrum(listener);
  result.publishKbps = Math.round((after.bytes - before.bytes) * 8 / (after.at - before.at));
  result.publishCodec = `${after.codec} ${after.fmtp}`;
  result.listenCodec = await received();
  // Chromium reports the codec inside RED; whether RED was agreed is in the descriptions.
  result.red = await listener.evaluate(() => window.tolk.session.pc.remoteDescription.sdp.includes('red/48000'));
  result.origin = await listener.evaluate(() => location.origin);
  // The listener's selected candidate pair: host or relay, UDP or TCP.
  result.path = await listener.evaluate(async () => {
    const stats = [...(await window.tolk.session.pc.getStats()).values()];
    const selected = stats.find((s) => s.type === 'transport')?.selectedCandidatePairId;
    const pair = stats.find((s) => s.id === selected)
      ?? stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
    const local = stats.find((s) => s.id === pair?.localCandidateId);
    const remote = stats.find((s) => s.id === pair?.remoteCandidateId);
    return { local: local?.candidateType, protocol: local?.protocol, remote: remote?.protocol };
  });
  if (shots) await listener.screenshot({ path: `${shots}/listener.png`, fullPage: true });
  if (Number(stay) > 0) {
    await listener.waitForTimeout(Number(stay) * 1000);
    result.later = await spectrum(listener);
    result.later.state = await listener.evaluate(() => window.tolk.session.pc.connectionState);
  }
  console.log(JSON.stringify(result));
} finally {
  clearTimeout(timer);
  await browser.close();
}
