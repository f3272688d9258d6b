// Real-browser check of the booth: two interpreter consoles in one booth, each in its
// own Chromium with its own fake microphone; the passive one says "ready", the live one
// clicks "Hand over"; prints what a listener of the channel hears before and after.
// Usage: node booth.mjs <interpreter-a-url> <interpreter-b-url> <listener-url> <wav-a> <wav-b> <channel> [screenshot-dir]
import { launch, open, press, spectrum, deadline } from './lib.mjs';

const [aUrl, bUrl, listenerUrl, wavA, wavB, channel, shots] = process.argv.slice(2);
const timer = deadline(120);
const browserA = await launch(wavA);
const browserB = await launch(wavB);
try {
  const a = await open(browserA, aUrl, 'interpreter A');
  await a.click('#start');
  await a.waitForFunction(() => window.tolk?.live === true, null, { timeout: 20_000 });
  const b = await open(browserB, bUrl, 'interpreter B');
  await b.click('#start');
  await b.waitForFunction(() => window.tolk?.booth?.members?.length === 2 && window.tolk.booth.members.every((m) => m.publishing), null, { timeout: 20_000 });
  console.error('both interpreters in the booth, A live');

  const listener = await open(browserA, listenerUrl, 'listener');
  await listener.click('#start');
  await listener.waitForFunction(() => !!window.tolk?.analyser, null, { timeout: 20_000 });
  await press(listener, `button[data-channel="${channel}"]`);
  await listener.waitForTimeout(2500);
  const before = await spectrum(listener);

  await b.click('#ready');
  await a.waitForFunction(() => window.tolk.booth.members.some((m) => m.ready), null, { timeout: 10_000 });
  await a.click('#go');
  await b.waitForFunction(() => window.tolk?.live === true, null, { timeout: 10_000 });
  console.error('handed over: B live');
  await listener.waitForTimeout(1500);
  const after = await spectrum(listener);
  if (shots) await b.screenshot({ path: `${shots}/console.png`, fullPage: true });
  console.log(JSON.stringify({ before, after }));
} finally {
  clearTimeout(timer);
  await browserA.close();
  await browserB.close();
}
