// Real-browser check: an interpreter page with a fake microphone (a WAV tone) and a
// listener page on that channel, in headless Chromium; prints what the listener hears.
// Usage: node e2e.mjs <interpreter-url> <listener-url> <wav> <channel> [screenshot-dir]
import { launch, open, spectrum, deadline } from './lib.mjs';

const [interpreterUrl, listenerUrl, wav, channel, shots] = process.argv.slice(2);
const timer = deadline(90);
const browser = await launch(wav);
try {
  const interpreter = await open(browser, interpreterUrl, 'interpreter');
  await interpreter.click('#start');
  await interpreter.waitForFunction(() => window.tolk?.live === true, null, { timeout: 20_000 });
  console.error('interpreter is live');

  const listener = await open(browser, listenerUrl, 'listener');
  await listener.click('#start');
  await listener.waitForFunction(() => !!window.tolk?.analyser, null, { timeout: 20_000 });
  await listener.click(`button[data-channel="${channel}"]`);
  await listener.waitForFunction((c) => document.querySelector(`button[data-channel="${c}"]`)?.getAttribute('aria-pressed') === 'true', channel, { timeout: 10_000 });
  console.error(`listener selected ${channel}`);
  await listener.waitForTimeout(2500);
  const result = await spectrum(listener);
  if (shots) await listener.screenshot({ path: `${shots}/listener.png`, fullPage: true });
  console.log(JSON.stringify(result));
} finally {
  clearTimeout(timer);
  await browser.close();
}
