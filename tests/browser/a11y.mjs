// Accessibility of every page, before and after joining: axe-core (WCAG 2.2 A and AA, and its
// best practices) on each; a keyboard-only listener starts, switches channel and keeps focus;
// the interpreter's cough held by the Space key and by a captured pointer.
// Usage: node a11y.mjs <index-url> <listener-url> <interpreter-url> <partner-url> <floor-url> <host-url> <wav>
import { launch, open, deadline, axe } from './lib.mjs';

const [indexUrl, listenerUrl, interpreterUrl, partnerUrl, floorUrl, hostUrl, wav] = process.argv.slice(2);
const timer = deadline(150);
const browser = await launch(wav);
const connected = (page) => page.waitForFunction(() => document.body.dataset.connection === 'connected', null, { timeout: 20_000 });

try {
  const found = {};
  const index = await open(browser, indexUrl, 'index');
  found.index = await axe(index);

  // Every page before it joins, then after (the listener by keyboard only).
  const listener = await open(browser, listenerUrl, 'listener');
  found.listener = await axe(listener);
  await listener.waitForSelector('#start:not([disabled])');
  await listener.keyboard.press('Tab'); // the language menu
  await listener.keyboard.press('Tab'); // Start
  const startFocused = await listener.evaluate(() => document.activeElement?.id);
  await listener.keyboard.press('Enter');
  await connected(listener);
  found.listenerJoined = await axe(listener);
  // To a channel by keyboard: Tab to the es button, Enter; focus stays on it after the switch.
  let steps = 0;
  while ((await listener.evaluate(() => document.activeElement?.dataset?.channel)) !== 'es' && steps++ < 20) {
    await listener.keyboard.press('Tab');
  }
  await listener.keyboard.press('Enter');
  await listener.waitForFunction(() => document.querySelector('[data-channel="es"]').getAttribute('aria-pressed') === 'true', null, { timeout: 10_000 });
  await listener.waitForTimeout(800); // room state updates meanwhile
  const keyboard = {
    startFocused,
    focusAfterSwitch: await listener.evaluate(() => document.activeElement?.dataset?.channel),
    status: await listener.evaluate(() => document.getElementById('status').textContent),
  };

  const floor = await open(browser, floorUrl, 'floor');
  found.floor = await axe(floor);
  await floor.click('#start');
  await connected(floor);
  found.floorJoined = await axe(floor);

  const a = await open(browser, interpreterUrl, 'interpreter');
  found.interpreter = await axe(a);
  await a.click('#start');
  await a.waitForFunction(() => window.tolk?.booth?.live, null, { timeout: 20_000 });
  found.interpreterJoined = await axe(a);
  const b = await open(browser, partnerUrl, 'partner');
  await b.click('#start');
  await b.waitForFunction(() => window.tolk?.booth && !window.tolk.booth.live, null, { timeout: 20_000 });
  // The partner's microphone is open too: the console warns (the page moves under the pointer).
  await a.waitForFunction(() => !document.getElementById('warning').hidden, null, { timeout: 10_000 });
  const warning = await a.textContent('#warning');

  // Cough by key: Space held on the cough button mutes until released.
  await a.focus('#cough');
  await a.keyboard.down('Space');
  await a.waitForFunction(() => window.tolk.booth.muted, null, { timeout: 5_000 });
  await a.waitForTimeout(1200);
  const heldByKey = await a.evaluate(() => window.tolk.booth.muted);
  await a.keyboard.up('Space');
  await a.waitForFunction(() => !window.tolk.booth.muted, null, { timeout: 5_000 });
  // Cough by pointer: held, while the warning comes and goes above it, then released elsewhere.
  const box = await a.locator('#cough').boundingBox();
  await a.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await a.mouse.down();
  await a.waitForFunction(() => window.tolk.booth.muted, null, { timeout: 5_000 });
  await a.mouse.move(box.x + box.width / 2, box.y + box.height * 3); // the button moved away
  await a.waitForTimeout(1200);
  const heldByPointer = await a.evaluate(() => window.tolk.booth.muted);
  await a.mouse.up();
  await a.waitForFunction(() => !window.tolk.booth.muted, null, { timeout: 5_000 });

  const host = await open(browser, hostUrl, 'host');
  await host.waitForSelector('#record');
  found.host = await axe(host);
  await connected(host);
  await host.waitForTimeout(500);
  found.hostJoined = await axe(host);

  const violations = Object.fromEntries(Object.entries(found).filter(([, v]) => v.length));
  console.log(JSON.stringify({ violations, keyboard, cough: { heldByKey, heldByPointer }, warning }));
} finally {
  clearTimeout(timer);
  await browser.close();
}
