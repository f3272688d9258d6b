// Real-browser check: an interpreter page with a fake microphone (a WAV tone) and a
// listener page on that channel, in headless Chromium; prints what the listener hears.
// Usage: node e2e.mjs <interpreter-url> <listener-url> <wav> <channel> [screenshot-dir]
import { chromium } from 'playwright-core';

const [interpreterUrl, listenerUrl, wav, channel, shots] = process.argv.slice(2);
const deadline = setTimeout(() => {
  console.error('browser test timed out after 90 s');
  process.exit(2);
}, 90_000);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // Playwright mutes audio by default; the listener must hear it.
  ignoreDefaultArgs: ['--mute-audio'],
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--allow-loopback-in-peer-connection',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`,
    '--autoplay-policy=no-user-gesture-required',
  ],
});

try {
  const interpreter = await browser.newPage();
  interpreter.on('console', (m) => console.error('[interpreter]', m.text()));
  await interpreter.goto(interpreterUrl);
  await interpreter.click('#start');
  await interpreter.waitForFunction(() => window.tolk?.live === true, null, { timeout: 20_000 });
  console.error('interpreter is live');

  const listener = await browser.newPage();
  listener.on('console', (m) => console.error('[listener]', m.text()));
  await listener.goto(listenerUrl);
  await listener.click('#start');
  await listener.waitForFunction(() => !!window.tolk?.analyser, null, { timeout: 20_000 });
  await listener.click(`button[data-channel="${channel}"]`);
  await listener.waitForFunction((c) => document.querySelector(`button[data-channel="${c}"]`)?.getAttribute('aria-pressed') === 'true', channel, { timeout: 10_000 });
  console.error(`listener selected ${channel}`);

  // Let audio flow, then read the analyser a few times and keep the loudest reading.
  await listener.waitForTimeout(2500);
  const result = await listener.evaluate(async () => {
    const a = window.tolk.analyser;
    const bins = new Float32Array(a.frequencyBinCount);
    const hz = (i) => (i * a.context.sampleRate) / a.fftSize;
    const level = (f) => {
      const i = Math.round((f * a.fftSize) / a.context.sampleRate);
      return Math.max(bins[i - 1], bins[i], bins[i + 1]);
    };
    let best = { peakHz: 0, peakDb: -Infinity, levels: {} };
    for (let k = 0; k < 10; k++) {
      a.getFloatFrequencyData(bins);
      let p = 0;
      for (let i = 1; i < bins.length; i++) if (bins[i] > bins[p]) p = i;
      if (bins[p] > best.peakDb) {
        best = { peakHz: hz(p), peakDb: bins[p], levels: { 440: level(440), 880: level(880), 1320: level(1320) } };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return best;
  });
  if (shots) {
    await interpreter.screenshot({ path: `${shots}/interpreter.png`, fullPage: true });
    await listener.screenshot({ path: `${shots}/listener.png`, fullPage: true });
  }
  console.log(JSON.stringify(result));
} finally {
  clearTimeout(deadline);
  await browser.close();
}
