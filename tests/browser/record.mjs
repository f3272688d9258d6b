// Real-browser check of recording: the host page starts and stops it, every page shows that it
// runs, the interpreter's console asks for consent and says whether the voice is recorded, and
// the host page lists the take with a link per file.
// Usage: node record.mjs <interpreter-url> <host-url> <listener-url> <floor-url> <wav> [screenshot-dir]
import { launch, open, deadline } from './lib.mjs';

const [interpreterUrl, hostUrl, listenerUrl, floorUrl, wav, shots] = process.argv.slice(2);
const timer = deadline(150);
const browser = await launch(wav);
const shown = (page, id) => page.evaluate((i) => {
  const e = document.getElementById(i);
  return e && !e.hidden ? e.textContent.trim() : null;
}, id);

try {
  const a = await open(browser, interpreterUrl, 'interpreter');
  await a.click('#start');
  await a.waitForFunction(() => window.tolk?.booth?.live, null, { timeout: 20_000 });
  const listener = await open(browser, listenerUrl, 'listener');
  await listener.click('#start');
  const floor = await open(browser, floorUrl, 'floor');
  await floor.click('#start');
  const host = await open(browser, hostUrl, 'host');
  await host.waitForSelector('#record');
  await host.waitForTimeout(1000);
  const before = { listener: await shown(listener, 'recording'), consent: await shown(a, 'consent') };

  await host.click('#record');
  await listener.waitForFunction(() => !document.getElementById('recording').hidden, null, { timeout: 10_000 });
  await a.waitForFunction(() => !document.getElementById('consent').hidden, null, { timeout: 10_000 });
  const during = {
    listener: await shown(listener, 'recording'),
    floor: await shown(floor, 'recording'),
    host: await shown(host, 'recording'),
    button: await host.textContent('#record'),
    consentAsked: await shown(a, 'consent'),
    console: await shown(a, 'recording-text'),
  };
  console.error('recording:', during);
  if (shots) await a.screenshot({ path: `${shots}/consent.png` });
  await a.click('#consent-yes');
  await a.waitForFunction(() => window.tolk.booth.recorded, null, { timeout: 10_000 });
  const agreed = { console: await shown(a, 'recording-text'), asked: await shown(a, 'consent') };
  await host.waitForFunction(() => document.querySelectorAll('#takes li a').length >= 2, null, { timeout: 10_000 });
  await host.waitForTimeout(5500);
  if (shots) await host.screenshot({ path: `${shots}/recording.png`, fullPage: true });
  await host.click('#record');
  await listener.waitForFunction(() => document.getElementById('recording').hidden, null, { timeout: 10_000 });
  await host.waitForFunction(() => document.querySelectorAll('#takes li a').length >= 2, null, { timeout: 10_000 });
  const takes = await host.evaluate(() => [...document.querySelectorAll('#takes li a')].map((l) => ({ text: l.textContent, href: l.getAttribute('href') })));
  // The link downloads the file as the host's browser would.
  const file = await host.evaluate(async (href) => {
    const r = await fetch(href);
    const b = new Uint8Array(await r.arrayBuffer());
    return { status: r.status, type: r.headers.get('content-type'), magic: String.fromCharCode(...b.slice(0, 4)), bytes: b.length };
  }, takes[0].href);
  console.log(JSON.stringify({ before, during, agreed, takes, file, after: await shown(listener, 'recording') }));
} finally {
  clearTimeout(timer);
  await browser.close();
}
