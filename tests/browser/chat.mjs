// Real-browser check of the booth chat: two consoles of one booth (A, B), a console of another
// booth (C), a host page and a listener page. Prints what each page's chat shows.
// Usage: node chat.mjs <a-url> <b-url> <c-url> <host-url> <listener-url> <wav> [screenshot-dir]
import { launch, open, deadline } from './lib.mjs';

const [aUrl, bUrl, cUrl, hostUrl, listenerUrl, wav, shots] = process.argv.slice(2);
const timer = deadline(150);
const browser = await launch(wav);
const lines = (page) => page.evaluate(() => [...document.querySelectorAll('#chat-log li .text')].map((t) => t.textContent));
const visible = (page) => page.evaluate(() => document.body.innerText);
const waitLine = (page, text) =>
  page.waitForFunction((t) => [...document.querySelectorAll('#chat-log li .text')].some((e) => e.textContent === t), text, { timeout: 10_000 });

async function say(page, to, text, big = false) {
  await page.selectOption('#chat-to', to);
  await page.fill('#chat-text', text);
  if (big) await page.check('#chat-big');
  await page.click('#chat-send');
}

try {
  const consoles = {};
  for (const [name, url] of [['a', aUrl], ['b', bUrl], ['c', cUrl]]) {
    const p = await open(browser, url, `interpreter ${name}`);
    await p.click('#start');
    await p.waitForFunction(() => !!window.tolk?.booth, null, { timeout: 20_000 });
    consoles[name] = p;
  }
  const { a, b, c } = consoles;
  const host = await open(browser, hostUrl, 'host');
  await host.waitForFunction(() => document.querySelectorAll('#chat-to option').length > 1, null, { timeout: 20_000 });
  const listener = await open(browser, listenerUrl, 'listener');
  await listener.click('#start');
  await listener.waitForFunction(() => !!window.tolk?.analyser, null, { timeout: 20_000 });
  console.error('three consoles, a host and a listener are in');

  // B is typing when A's line arrives: B's focus and half-typed text stay.
  await b.focus('#chat-text');
  await b.keyboard.type('half a sen');
  const markup = 'Term? <img src=x onerror="window.pwned=1"><b>gross domestic product</b>';
  await say(a, 'booth', markup, true);
  await waitLine(b, markup);
  const bFocus = await b.evaluate(() => ({ id: document.activeElement?.id, value: document.getElementById('chat-text').value }));
  const asText = await b.evaluate(() => ({
    elements: document.querySelectorAll('#chat-log img, #chat-log b').length,
    pwned: window.pwned === 1,
    big: document.querySelector('#chat-log li.big') !== null,
  }));
  await a.waitForTimeout(1500);
  const leaked = {
    c: (await lines(c)).includes(markup),
    host: (await lines(host)).includes(markup),
    listener: (await visible(listener)).includes('gross domestic product'),
  };
  console.error('A to its booth:', { bFocus, asText, leaked });

  // The host writes to every booth; A writes to the hosts.
  const all = 'Speaker switches to French in 2 minutes';
  await say(host, '', all);
  for (const p of [a, b, c]) await waitLine(p, all);
  const toHosts = 'Your sound is breaking up?';
  await say(a, 'hosts', toHosts);
  await waitLine(host, toHosts);
  await b.waitForTimeout(1000);
  const reach = {
    allAtListener: (await visible(listener)).includes(all),
    hostLineAtB: (await lines(b)).includes(toHosts),
    hostLineAtC: (await lines(c)).includes(toHosts),
  };
  console.error('host to all, A to hosts:', reach);

  // B's page reloads: its new session shows the last lines.
  await b.reload();
  await b.click('#start');
  await waitLine(b, markup);
  await waitLine(b, all);
  const afterReload = await lines(b);
  if (shots) await a.screenshot({ path: `${shots}/chat.png`, fullPage: true });
  console.log(JSON.stringify({ bFocus, asText, leaked, reach, afterReload }));
} finally {
  clearTimeout(timer);
  await browser.close();
}
