// Real-browser check of the listener's controls: the balance slider moved by keyboard from the
// interpretation to the original, what is heard at each end, the volume, and what the page and
// the phone's lock screen say is playing.
// Usage: node listener.mjs <floor-url> <interpreter-url> <listener-url> <floor-wav> <voice-wav>
import { launch, open, deadline, spectrum } from './lib.mjs';

const [floorUrl, interpreterUrl, listenerUrl, floorWav, voiceWav] = process.argv.slice(2);
const timer = deadline(120);
// One fake microphone per browser: the floor's tone in one, the interpreter's in the other.
const floorBrowser = await launch(floorWav);
const browser = await launch(voiceWav);

try {
  const floor = await open(floorBrowser, floorUrl, 'floor');
  await floor.click('#start');
  const a = await open(browser, interpreterUrl, 'interpreter');
  await a.click('#start');
  await a.waitForFunction(() => window.tolk?.booth?.live, null, { timeout: 20_000 });
  const l = await open(browser, listenerUrl, 'listener');
  await l.click('#start');
  await l.waitForFunction(() => !!window.tolk?.analyser, null, { timeout: 20_000 });
  await l.click('[data-channel="es"]');
  await l.waitForFunction(() => document.querySelector('[data-channel="es"]').getAttribute('aria-pressed') === 'true', null, { timeout: 10_000 });
  await l.waitForTimeout(2500);
  const heard = { standard: await spectrum(l) };
  const said = { standard: await l.textContent('#status') };
  // Keyboard: focus the slider, Home (the original only), then End (the interpretation only).
  await l.focus('#balance');
  await l.keyboard.press('Home');
  await l.waitForFunction(() => document.getElementById('status').textContent.includes('Original only'), null, { timeout: 10_000 });
  await l.waitForTimeout(2500);
  heard.original = await spectrum(l);
  said.original = await l.textContent('#status');
  await l.keyboard.press('End');
  await l.waitForFunction(() => document.getElementById('status').textContent.includes('Interpretation only'), null, { timeout: 10_000 });
  await l.waitForTimeout(2500);
  heard.interpretation = await spectrum(l);
  said.interpretation = await l.textContent('#status');
  await l.fill('#volume', '0.25');
  const page = await l.evaluate(() => ({
    volume: document.getElementById('audio').volume,
    valuetext: document.getElementById('balance').getAttribute('aria-valuetext'),
    lockScreen: navigator.mediaSession?.metadata?.title ?? null,
    wakeLock: window.tolk.wakeLock ?? null,
  }));
  console.log(JSON.stringify({ heard, said, page }));
} finally {
  clearTimeout(timer);
  await browser.close();
  await floorBrowser.close();
}
