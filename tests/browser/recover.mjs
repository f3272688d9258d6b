// Pages come back by themselves. Runs a tolk server (as its own process), a floor page (440 Hz),
// an interpreter console (880 Hz, es) and a listener on es, then: kills the server with SIGKILL
// and starts it again; closes the listener's and then the interpreter's WebSocket; drops all
// UDP to and from the media port for 5 s (nft, in the test's network namespace). After each,
// measures how long until the listener hears the interpreter again, with no click.
// Usage: node recover.mjs <tolk-binary> <config.toml> <http host:port> <udp port> <floor.wav> <interpreter.wav>
import { spawn, execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { launch, open, press, spectrum, deadline } from './lib.mjs';

const [bin, config, http, udpPort, floorWav, interpreterWav] = process.argv.slice(2);
const timer = deadline(170);
const log = (...a) => console.error(...a);

function startServer() {
  const child = spawn(bin, ['serve', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((ok, fail) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (l) => l.startsWith('tolk is serving') && ok(child));
    child.on('exit', (code) => fail(new Error(`tolk exited with ${code}`)));
  });
}

async function api(method, path, body) {
  const r = await fetch(`http://${http}${path}`, {
    method,
    headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const connection = (page) => page.evaluate(() => document.body.dataset.connection ?? null);

/** Milliseconds from `since` until `page` hears `hz` as its loudest tone (read every 250 ms), or null. */
async function until(page, hz, since, limitMs = 25_000) {
  while (Date.now() - since < limitMs) {
    try {
      const s = await spectrum(page);
      if (Math.abs(s.peakHz - hz) < 25 && s.levels[hz] > -60) return Date.now() - since;
    } catch (e) { /* the analyser is being replaced */ }
    await sleep(250);
  }
  return null;
}

/** Milliseconds until the page shows it is reconnecting (polled every 50 ms), or null. */
async function noticed(page, since, limitMs = 10_000) {
  while (Date.now() - since < limitMs) {
    if ((await connection(page)) === 'reconnecting') return Date.now() - since;
    await sleep(50);
  }
  return null;
}

function nft(...args) {
  execFileSync('nft', args, { stdio: 'inherit' });
}

let server = await startServer();
const result = {};
const floorBrowser = await launch(floorWav);
const interpreterBrowser = await launch(interpreterWav);
try {
  await api('POST', '/api/rooms', { id: 'conf', floor_lang: 'en', channels: [{ lang: 'es', name: 'Español' }] });
  await api('POST', '/api/rooms/conf/channels', { lang: 'fr', name: 'Français' });
  const mint = async (role, channel) => (await api('POST', '/api/rooms/conf/tokens', { role, channel, name: role })).url;
  const [floorUrl, interpreterUrl, listenerUrl] = [await mint('floor'), await mint('interpreter', 'es'), await mint('listener')];

  const floor = await open(floorBrowser, floorUrl, 'floor');
  await floor.click('#start');
  await floor.waitForFunction(() => document.body.dataset.connection === 'connected', null, { timeout: 20_000 });
  const interpreter = await open(interpreterBrowser, interpreterUrl, 'interpreter');
  await interpreter.click('#start');
  await interpreter.waitForFunction(() => window.tolk?.live === true, null, { timeout: 20_000 });
  const listener = await open(interpreterBrowser, listenerUrl, 'listener');
  await listener.click('#start');
  await listener.waitForFunction(() => !!window.tolk?.analyser, null, { timeout: 20_000 });
  await press(listener, 'button[data-channel="es"]');
  result.before = await until(listener, 880, Date.now());
  log('listener hears the interpreter', result.before);

  // 1. kill -9 and start again.
  const killed = Date.now();
  server.kill('SIGKILL');
  result.kill = { noticedMs: await noticed(listener, killed) };
  await sleep(1000);
  const restarted = Date.now();
  server = await startServer();
  result.kill.startMs = Date.now() - restarted;
  result.kill.heardMs = await until(listener, 880, restarted);
  await interpreter.waitForFunction(() => window.tolk?.live === true, null, { timeout: 20_000 });
  result.kill.interpreterLive = true;
  result.kill.interpreterHearsFloor = Math.round((await spectrum(interpreter)).peakHz);
  result.kill.room = await api('GET', '/api/rooms/conf');
  result.kill.listenerChannel = await listener.evaluate(() => document.querySelector('button[aria-pressed="true"]')?.dataset.channel);
  log('after kill -9', JSON.stringify(result.kill));

  // 2. One page's WebSocket closes (the listener's, then the interpreter's).
  let t = Date.now();
  await listener.evaluate(() => window.tolk.session.ws.close());
  result.listenerSocket = { noticedMs: await noticed(listener, t), heardMs: await until(listener, 880, t) };
  t = Date.now();
  await interpreter.evaluate(() => window.tolk.session.ws.close());
  result.interpreterSocket = { noticedMs: await noticed(interpreter, t) };
  await interpreter.waitForFunction(() => window.tolk?.live === true && document.body.dataset.connection === 'connected', null, { timeout: 20_000 });
  result.interpreterSocket.liveMs = Date.now() - t;
  result.interpreterSocket.heardMs = await until(listener, 880, t);
  log('after closed sockets', JSON.stringify([result.listenerSocket, result.interpreterSocket]));

  // 3. The media path is dropped for 5 s, both ways.
  nft('add', 'table', 'inet', 'blackhole');
  nft('add', 'chain', 'inet', 'blackhole', 'in', '{ type filter hook input priority 0; }');
  nft('add', 'rule', 'inet', 'blackhole', 'in', 'udp', 'dport', udpPort, 'drop');
  nft('add', 'rule', 'inet', 'blackhole', 'in', 'udp', 'sport', udpPort, 'drop');
  const dropped = Date.now();
  await sleep(1500);
  result.blackhole = { silentDuring: (await until(listener, 880, Date.now(), 1000)) === null };
  await sleep(5000 - (Date.now() - dropped));
  nft('delete', 'table', 'inet', 'blackhole');
  const restored = Date.now();
  result.blackhole.heardMs = await until(listener, 880, restored);
  await interpreter.waitForFunction(() => window.tolk?.live === true, null, { timeout: 20_000 });
  result.blackhole.listenerState = await connection(listener);
  log('after the blackhole', JSON.stringify(result.blackhole));
  console.log(JSON.stringify(result));
} finally {
  clearTimeout(timer);
  server.kill('SIGKILL');
  await floorBrowser.close();
  await interpreterBrowser.close();
}
