// Real-browser check of the pages' languages: the listener page follows the browser's locale
// (Spanish, Arabic right to left), a choice on the page switches it and is remembered, channel
// buttons name each language in the listener's, and a channel name with markup shows as text.
// Usage: node language.mjs <listener-url> <wav> [screenshot-dir]
import { readFileSync } from 'node:fs';
import { launch, open, deadline } from './lib.mjs';

const [listenerUrl, wav, shots] = process.argv.slice(2);
const timer = deadline(120);
const browser = await launch(wav);
const catalogue = (l) => JSON.parse(readFileSync(new URL(`../../web/i18n/${l}.json`, import.meta.url)));
const look = (page) => page.evaluate(() => ({
  lang: document.documentElement.lang,
  dir: document.documentElement.dir,
  title: document.querySelector('h1').textContent,
  start: document.getElementById('start').textContent,
  status: document.getElementById('status').textContent,
  picker: document.getElementById('language')?.value,
}));

try {
  const result = {};
  // Spanish from the browser's locale (navigator.languages and Accept-Language).
  const es = await open(browser, listenerUrl, 'listener es', { locale: 'es-ES' });
  await es.waitForFunction(() => document.documentElement.lang === 'es', null, { timeout: 10_000 });
  result.es = await look(es);
  await es.click('#start');
  await es.waitForFunction(() => document.body.dataset.connection === 'connected', null, { timeout: 20_000 });
  result.esConnected = await look(es);
  if (shots) await es.screenshot({ path: `${shots}/listener-es.png` });
  result.esButtons = await es.evaluate(() => [...document.querySelectorAll('#channels button')].map((b) => b.textContent));
  result.injected = await es.evaluate(() => ({
    images: document.querySelectorAll('#channels img').length,
    pwned: window.pwned === 1,
  }));
  // Chosen on the page: French, and still French after a reload.
  await es.selectOption('#language', 'fr');
  await es.waitForFunction(() => document.documentElement.lang === 'fr', null, { timeout: 5_000 });
  result.frSwitched = await look(es);
  result.frButtons = await es.evaluate(() => [...document.querySelectorAll('#channels button')].map((b) => b.textContent));
  await es.reload();
  await es.waitForFunction(() => document.documentElement.lang === 'fr', null, { timeout: 10_000 });
  result.frReloaded = await look(es);
  // Arabic, right to left.
  const ar = await open(browser, listenerUrl, 'listener ar', { locale: 'ar-EG' });
  await ar.waitForFunction(() => document.documentElement.lang === 'ar', null, { timeout: 10_000 });
  result.ar = await look(ar);
  if (shots) {
    await ar.click('#start');
    await ar.waitForFunction(() => document.body.dataset.connection === 'connected', null, { timeout: 20_000 });
    await ar.screenshot({ path: `${shots}/listener-ar.png` });
  }
  result.expected = {
    es: { title: catalogue('es')['listen.title'], start: catalogue('es')['listen.start'], floor: catalogue('es')['listen.listening_floor'] },
    fr: { title: catalogue('fr')['listen.title'], start: catalogue('fr')['listen.start'] },
    ar: { title: catalogue('ar')['listen.title'], start: catalogue('ar')['listen.start'] },
  };
  console.log(JSON.stringify(result));
} finally {
  clearTimeout(timer);
  await browser.close();
}
