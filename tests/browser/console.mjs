// Real-browser check of the interpreter's console: on a 375x700 phone the cough and handover
// buttons are on the first screen; the audience count follows a listener; the headphones never
// get more than -6 dBFS with Volume and Bass at their maximum (measured after the limiter in the
// page's audio graph); relaying a channel with nobody on air says so and offers the Floor.
// Usage: node console.mjs <floor-url> <interpreter-url> <relay-url> <listener-url> <floor-wav> <voice-wav> [screenshot-dir]
import { launch, open, deadline } from './lib.mjs';

const [floorUrl, interpreterUrl, relayUrl, listenerUrl, floorWav, voiceWav, shots] = process.argv.slice(2);
const timer = deadline(150);
const floorBrowser = await launch(floorWav);
const browser = await launch(voiceWav);

try {
  const floor = await open(floorBrowser, floorUrl, 'floor');
  await floor.click('#start');
  const a = await open(browser, interpreterUrl, 'interpreter', { viewport: { width: 375, height: 700 } });
  await a.click('#start');
  await a.waitForFunction(() => window.tolk?.booth?.live && window.tolk.headphonesPeak, null, { timeout: 20_000 });
  await a.evaluate(() => window.scrollTo(0, 0));
  const phone = await a.evaluate(() => Object.fromEntries(['cough', 'mute', 'ready', 'go', 'take'].map((id) => {
    const r = document.getElementById(id).getBoundingClientRect();
    return [id, { top: Math.round(r.top), bottom: Math.round(r.bottom), visible: r.top >= 0 && r.bottom <= window.innerHeight }];
  })));
  if (shots) await a.screenshot({ path: `${shots}/console-phone.png` });

  // The audience: a listener comes to es.
  const before = await a.textContent('#audience');
  const l = await open(browser, listenerUrl, 'listener');
  await l.click('#start');
  await l.waitForFunction(() => !!window.tolk?.analyser, null, { timeout: 20_000 });
  await l.click('[data-channel="es"]');
  await a.waitForFunction(() => /1/.test(document.getElementById('audience').textContent), null, { timeout: 5_000 });
  const audience = { before, after: await a.textContent('#audience') };

  // Headphones: Volume and Bass at their maximum, the floor at its level.
  await a.fill('#volume', '2');
  await a.fill('#bass', '12');
  await a.waitForTimeout(1500);
  await a.evaluate(() => window.tolk.headphonesPeak());
  const input = await a.evaluate(async () => {
    const an = window.tolk.analyser;
    const buf = new Float32Array(an.fftSize);
    let peak = 0;
    for (let k = 0; k < 20; k++) {
      an.getFloatTimeDomainData(buf);
      for (const x of buf) peak = Math.max(peak, Math.abs(x));
      await new Promise((r) => setTimeout(r, 100));
    }
    return peak;
  });
  const out = await a.evaluate(() => window.tolk.headphonesPeak());
  const headphones = { inputPeak: input, outputPeak: out, outputDbfs: 20 * Math.log10(out) };

  // Relay of a channel with nobody on air (en), then the Floor as offered.
  const b = await open(browser, relayUrl, 'relay');
  await b.click('#start');
  await b.waitForFunction(() => !!window.tolk?.booth, null, { timeout: 20_000 });
  await b.click('#inputs [data-key="en"]');
  await b.waitForFunction(() => !document.getElementById('relay-silent').hidden, null, { timeout: 5_000 });
  const silent = await b.textContent('#relay-silent-text');
  await b.click('#hear-floor');
  await b.waitForFunction(() => document.getElementById('relay-silent').hidden && window.tolk.booth.input === null, null, { timeout: 5_000 });
  console.log(JSON.stringify({ phone, audience, headphones, relay: { silent, back: 'floor' } }));
} finally {
  clearTimeout(timer);
  await browser.close();
  await floorBrowser.close();
}
