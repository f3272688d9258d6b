// Real-browser check of the organiser's way in: host.html without a link, signed in with the API
// key, creates a room with two channels and opens it as host; from there an interpreter link and
// the audience's link (both with a QR code) bring an interpreter and a listener who hears them;
// a channel renamed reaches the listener's page; bad, expired and missing links say so on load.
// Usage: node organise.mjs <base-url> <api-key> <expired-listener-url> <floor-wav> <voice-wav> [screenshot-dir]
// (a revoked link is made and revoked on the host page)
import { launch, open, deadline, spectrum, axe } from './lib.mjs';

const [base, key, expiredUrl, floorWav, voiceWav, shots] = process.argv.slice(2);
const timer = deadline(150);
const floorBrowser = await launch(floorWav);
const browser = await launch(voiceWav);
const connected = (page) => page.waitForFunction(() => document.body.dataset.connection === 'connected', null, { timeout: 20_000 });

try {
  const org = await open(browser, `${base}/host.html`, 'organiser');
  await org.waitForSelector('#login');
  const violations = { signIn: await axe(org) };
  await org.fill('#api-key', key);
  await org.click('#login button');
  await org.waitForSelector('#rooms-panel:not([hidden])');
  violations.rooms = await axe(org);
  const listed = await org.evaluate(() => [...document.querySelectorAll('#rooms li')].map((li) => li.textContent));
  await org.fill('#create [name=id]', 'conf');
  await org.fill('#create [name=floor_lang]', 'en');
  await org.fill('#create [name=channels]', 'es, fr');
  await org.click('#create button');
  await org.waitForSelector('#room-console:not([hidden])', { timeout: 20_000 });
  await connected(org);
  const room = await org.textContent('#room');

  // An interpreter link for es, valid an hour, and the audience's link.
  await org.selectOption('#invite [name=role]', 'interpreter');
  await org.selectOption('#channel-select', 'es');
  await org.fill('#invite [name=name]', 'Ana');
  await org.selectOption('#invite [name=ttl]', '3600');
  await org.click('#invite button.primary');
  await org.waitForSelector('#link a');
  const interpreterUrl = await org.getAttribute('#link a', 'href');
  await org.click('#audience-link');
  await org.waitForSelector('#audience a');
  const listenerUrl = await org.getAttribute('#audience a', 'href');
  await org.waitForFunction(() => [...document.querySelectorAll('img.qr')].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 5_000 });
  const qr = await org.evaluate(() => ({ count: document.querySelectorAll('img.qr').length, width: document.querySelector('img.qr').naturalWidth }));
  const expires = await org.textContent('#link .sub');
  violations.host = await axe(org);
  if (shots) await org.locator('#audience').screenshot({ path: `${shots}/audience-qr.png` });

  const floorUrl = await (async () => {
    await org.selectOption('#invite [name=role]', 'floor');
    await org.selectOption('#channel-select', '');
    await org.click('#invite button.primary');
    await org.waitForFunction(() => document.querySelector('#link a')?.href.includes('floor.html'), null, { timeout: 5_000 });
    return org.getAttribute('#link a', 'href');
  })();
  const floor = await open(floorBrowser, floorUrl, 'floor');
  await floor.click('#start');
  const a = await open(browser, interpreterUrl, 'interpreter');
  await a.click('#start');
  await a.waitForFunction(() => window.tolk?.booth?.live, null, { timeout: 20_000 });
  const l = await open(browser, listenerUrl, 'listener');
  await l.click('#start');
  await l.waitForFunction(() => !!window.tolk?.analyser, null, { timeout: 20_000 });
  await l.click('[data-channel="es"]');
  await l.waitForTimeout(2500);
  const heard = await spectrum(l);

  // The host renames es; the listener's button follows.
  org.once('dialog', (d) => d.accept('Español de España'));
  await org.click('#state button.small');
  await l.waitForFunction(() => document.querySelector('[data-channel="es"]').textContent.includes('Español de España'), null, { timeout: 5_000 });
  const renamed = await l.textContent('[data-channel="es"]');

  // The host revokes a listener link it just made.
  await org.selectOption('#invite [name=role]', 'listener');
  await org.click('#invite button.primary');
  await org.waitForFunction(() => document.querySelector('#link a')?.href.includes('listen.html'), null, { timeout: 5_000 });
  const revokedUrl = await org.getAttribute('#link a', 'href');
  org.once('dialog', (d) => d.accept());
  await org.click('#link button:has-text("Revoke")');
  await org.waitForFunction(() => /Revoked/.test(document.querySelector('#link .sub').textContent), null, { timeout: 5_000 });

  // Links that do not work say so when their page opens.
  const said = {};
  for (const [what, url] of [['revoked', revokedUrl], ['bad', `${base}/listen.html#token=not-a-token`], ['expired', expiredUrl], ['missing', `${base}/interpret.html`]]) {
    const p = await open(browser, url, what);
    await p.waitForFunction(() => !!document.body.dataset.link, null, { timeout: 10_000 });
    said[what] = { text: await p.textContent('#status'), startDisabled: await p.isDisabled('#start') };
  }
  console.log(JSON.stringify({ listed, room, interpreterUrl, listenerUrl, qr, expires, heard, renamed, said, violations }));
} finally {
  clearTimeout(timer);
  await browser.close();
  await floorBrowser.close();
}
