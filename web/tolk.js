// The browser side of tolk's signalling protocol (written down in src/protocol.rs):
// join with a token, offer one audio track, select a channel, follow room state.
import { t } from './i18n.js';

/** The invitation token, carried in the URL fragment so it never reaches server logs. */
export function inviteToken() {
  return new URLSearchParams(location.hash.slice(1)).get('token');
}

/** Errors after which a page must not rejoin by itself: it would be refused again. */
const FINAL = new Set(['bad_token', 'token_expired', 'revoked', 'forbidden', 'not_found', 'ended']);
/** How long a media connection may stay "disconnected" (or take to connect) before the page starts over. */
const MEDIA_GRACE_MS = 3000;
const CONNECT_LIMIT_MS = 8000;

/** A random key this page keeps while it is open (and across reloads of the tab), so that rejoining replaces its old session. */
function resumeKey() {
  let key = sessionStorage.getItem('tolk-resume');
  if (!key) {
    key = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
    sessionStorage.setItem('tolk-resume', key);
  }
  return key;
}

/**
 * One participant's signalling session over a WebSocket, and its media connection. It comes
 * back by itself: when the WebSocket closes, the server says the media was lost, or the media
 * path stays down, it emits 'reconnecting', rejoins with the same token (and resume key) with
 * backoff, and runs the page's `setup` again, which renegotiates media and restores what the
 * person had; then 'connected'. It stops only for good reasons ('ended': a bad or expired
 * link, a deleted room, the same person joined elsewhere).
 * Also emits the server's messages by type: 'state', 'booth', 'selected', 'caption', 'notice', 'error'.
 */
export class Session extends EventTarget {
  constructor() {
    super();
    this.waiting = [];
    this.resume = resumeKey();
    this.attempts = 0;
    this.state = 'idle';
  }

  /**
   * Joins with `token` and runs `setup(joined, again)` (connect media, restore state); then
   * keeps the session alive. `publish()` gives the channel an interpreter publishes into.
   * The first attempt throws, so the page can say why; later ones retry by themselves.
   */
  async run(token, setup, publish = () => null) {
    this.token = token;
    this.setup = setup;
    this.publish = publish;
    try {
      await this.attempt(false);
    } catch (e) {
      this.teardown();
      this.state = 'idle';
      throw e;
    }
  }

  /** One try: open, join, set up; it fails as soon as the connection is lost meanwhile. */
  async attempt(again) {
    this.state = again ? 'rejoining' : 'connecting';
    const aborted = new Promise((_, fail) => (this.abort = fail));
    aborted.catch(() => {});
    await Promise.race([aborted, (async () => {
      await this.open();
      const joined = await this.join(this.token, this.publish());
      await this.setup(joined, again);
    })()]);
    this.state = 'connected';
    this.attempts = 0;
    this.dispatchEvent(new CustomEvent('connected', { detail: { again } }));
  }

  /** The connection is gone: start over, after a pause that grows with each failed try. */
  lost(why) {
    if (this.state === 'connecting' || this.state === 'rejoining') {
      this.abort(Object.assign(new Error(why), { code: 'lost' }));
      return;
    }
    if (this.state !== 'connected') return;
    this.state = 'reconnecting';
    console.info(`tolk: ${why}; reconnecting`);
    this.dispatchEvent(new CustomEvent('reconnecting', { detail: { why } }));
    this.teardown();
    const retry = async () => {
      const wait = Math.min(250 * 2 ** this.attempts, 3000) * (0.75 + Math.random() / 2);
      this.attempts++;
      await new Promise((r) => setTimeout(r, wait));
      try {
        await this.attempt(true);
      } catch (e) {
        if (this.state === 'ended') return;
        if (FINAL.has(e.code)) return this.end(e);
        console.info(`tolk: reconnecting failed (${e.message}); trying again`);
        this.teardown();
        this.state = 'reconnecting';
        retry();
      }
    };
    retry();
  }

  end(e) {
    this.state = 'ended';
    this.teardown();
    this.dispatchEvent(new CustomEvent('ended', { detail: { message: e.message, code: e.code } }));
  }

  teardown() {
    clearTimeout(this.mediaTimer);
    for (const w of this.waiting.splice(0)) w.fail(Object.assign(new Error('connection lost'), { code: 'lost' }));
    if (this.ws) {
      this.ws.onclose = this.ws.onmessage = this.ws.onerror = null;
      this.ws.close();
      this.ws = null;
    }
    if (this.pc) {
      this.pc.onconnectionstatechange = null;
      this.pc.close();
      this.pc = null;
    }
  }

  async open() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    await new Promise((ok, fail) => {
      ws.onopen = ok;
      ws.onerror = () => fail(Object.assign(new Error('cannot reach the tolk server'), { code: 'unreachable' }));
      ws.onclose = () => fail(Object.assign(new Error('cannot reach the tolk server'), { code: 'unreachable' }));
    });
    ws.onmessage = (e) => this.receive(JSON.parse(e.data));
    ws.onclose = () => {
      for (const w of this.waiting.splice(0)) w.fail(Object.assign(new Error('the server connection dropped'), { code: 'lost' }));
      this.lost('the server connection dropped');
    };
  }

  receive(msg) {
    if (msg.type === 'error' && (msg.code === 'ended' || msg.code === 'revoked')) return this.end(msg);
    const i = this.waiting.findIndex((w) => w.types.includes(msg.type));
    if (i >= 0) {
      const [w] = this.waiting.splice(i, 1);
      msg.type === 'error' ? w.fail(Object.assign(new Error(msg.message), { code: msg.code })) : w.ok(msg);
      if (msg.type !== 'selected') return;
    }
    // The server dropped this session's media (its path died): start over.
    if (msg.type === 'error' && msg.code === 'not_joined' && this.state === 'connected') return this.lost(msg.message);
    this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
  }

  request(msg, type) {
    return new Promise((ok, fail) => {
      this.waiting.push({ types: [type, 'error'], ok, fail });
      this.ws.send(JSON.stringify(msg));
    });
  }

  async join(token, publish) {
    const joined = await this.request({ type: 'join', token, resume: this.resume, ...(publish ? { publish } : {}) }, 'joined');
    // TURN relays with fresh credentials, for networks where the media port cannot be reached directly.
    this.iceServers = joined.ice_servers ?? [];
    return joined;
  }

  /** Opens the media connection: sends `stream`'s track if given, receives if `receive`. */
  async connect({ stream = null, receive = true }) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers ?? [] });
    this.pc = pc;
    const direction = stream ? (receive ? 'sendrecv' : 'sendonly') : 'recvonly';
    const tr = pc.addTransceiver('audio', { direction, streams: stream ? [stream] : [] });
    if (stream) await tr.sender.replaceTrack(stream.getAudioTracks()[0]);
    const remote = new Promise((ok) => (pc.ontrack = (e) => ok(new MediaStream([e.track]))));
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await this.request({ type: 'offer', sdp: pc.localDescription.sdp }, 'answer');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    // A media path that does not come up, or stays down, is started over (a network change,
    // a server that restarted, a firewall that dropped the flow).
    const watch = () => {
      clearTimeout(this.mediaTimer);
      const s = pc.connectionState;
      if (s === 'failed' || s === 'closed') return this.lost(`the media connection ${s}`);
      if (s !== 'connected') {
        const limit = s === 'disconnected' ? MEDIA_GRACE_MS : CONNECT_LIMIT_MS;
        this.mediaTimer = setTimeout(() => this.pc === pc && this.lost(`the media connection stayed ${s}`), limit);
      }
    };
    pc.onconnectionstatechange = watch;
    watch();
    return { pc, remote: receive ? remote : null };
  }

  /** Hears `channel` (`null`: the Floor) at a balance step (0 the original .. 4 the interpretation). */
  select(channel, balance = 2) {
    return this.request({ type: 'select', channel, balance }, 'selected');
  }

  /** Fire-and-forget requests; refusals arrive as 'error' events. Dropped while reconnecting. */
  send(msg) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }
}

/**
 * Shows the connection's ups and downs in the page's status line (and on
 * `document.body.dataset.connection`); `connected()` gives the page's own words for "connected".
 */
export function followConnection(session, connected) {
  const el = document.getElementById('status');
  const set = (state, text, error = false) => {
    document.body.dataset.connection = state;
    el.textContent = text;
    el.classList.toggle('error', error);
  };
  session.addEventListener('reconnecting', () => set('reconnecting', t('status.reconnecting'), true));
  session.addEventListener('connected', (e) => set('connected', e.detail.again ? t('status.reconnected') : connected()));
  session.addEventListener('ended', (e) => set('ended', explain(e.detail), true));
}

/** The microphone as interpreters and floor speakers need it: no processing, full band. */
export function microphone() {
  return navigator.mediaDevices.getUserMedia({
    audio: {
      echoCancellation: false,
      noiseSuppression: false,
      autoGainControl: false,
      sampleRate: 48000,
      channelCount: 1,
    },
  });
}

let context;
export function audioContext() {
  context ??= new AudioContext({ sampleRate: 48000 });
  return context;
}

/** Plays a remote stream and returns an analyser on it. */
export function play(stream, audio) {
  // Chrome routes remote WebRTC audio into WebAudio only while an element plays it.
  audio.srcObject = stream;
  audio.play().catch(() => {});
  return analyse(stream);
}

/**
 * The interpreter's return: volume, bass and treble, then a brickwall limiter (hearing
 * protection: nothing reaches the headphones above -6 dBFS; `web/limiter.js`). Returns the
 * analyser of what comes in, the controls, and `peak()`: the loudest sample the limiter let out
 * since the last call (the page's own measurement of what the headphones got).
 */
export async function console_return(stream, audio) {
  audio.srcObject = stream;
  audio.muted = true; // the WebAudio graph below plays it
  audio.play().catch(() => {});
  const ctx = audioContext();
  await ctx.audioWorklet.addModule('limiter.js');
  const source = ctx.createMediaStreamSource(stream);
  const volume = ctx.createGain();
  const bass = ctx.createBiquadFilter();
  bass.type = 'lowshelf';
  bass.frequency.value = 250;
  const treble = ctx.createBiquadFilter();
  treble.type = 'highshelf';
  treble.frequency.value = 4000;
  const limiter = new AudioWorkletNode(ctx, 'tolk-limiter');
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 4096;
  analyser.smoothingTimeConstant = 0;
  source.connect(volume).connect(bass).connect(treble).connect(limiter);
  limiter.connect(ctx.destination);
  source.connect(analyser);
  const peak = () => new Promise((resolve) => {
    limiter.port.onmessage = (e) => resolve(e.data);
    limiter.port.postMessage('peak');
  });
  return { analyser, volume, bass, treble, peak };
}

export function analyse(stream) {
  const ctx = audioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 4096;
  analyser.smoothingTimeConstant = 0;
  ctx.createMediaStreamSource(stream).connect(analyser);
  return analyser;
}

const meters = new WeakMap();

/** Drives a level meter element (its --level custom property, 0..1) from an analyser; a later call swaps the analyser. */
export function meter(analyser, element) {
  const running = meters.has(element);
  meters.set(element, analyser);
  if (running) return;
  const draw = () => {
    const a = meters.get(element);
    const buf = new Float32Array(a.fftSize);
    a.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const s of buf) sum += s * s;
    const db = 10 * Math.log10(sum / buf.length + 1e-12);
    element.style.setProperty('--level', Math.max(0, Math.min(1, (db + 60) / 60)).toFixed(3));
    element.title = `${db.toFixed(0)} dBFS`;
    requestAnimationFrame(draw);
  };
  draw();
}

export function show(id, text) {
  document.getElementById(id).textContent = text;
}

/**
 * An error in the person's language: the server's and the browser's errors by their code (what
 * happened and what to do), anything else as it came.
 */
export function explain(e) {
  const key = e.code ? `error.${e.code}` : e.name ? `error.${e.name}` : null;
  const text = key ? t(key) : key;
  return text && text !== key ? text : e.message || String(e);
}

/**
 * Checks the page's invitation link as soon as the page opens: a missing, bad, expired link or
 * one whose room is gone is said at once, in the person's language, with what to do, and the
 * Start button is disabled. Returns whether the link works (or the server could not say).
 */
export async function checkLink() {
  const token = inviteToken();
  let bad = token ? null : { code: 'missing' };
  if (token) {
    try {
      const r = await fetch('/api/link', { headers: { authorization: `Bearer ${token}` } });
      if (!r.ok) bad = await r.json();
    } catch { /* the server is unreachable: pressing Start says so */ }
  }
  if (!bad) return true;
  const key = `link.${bad.code}`;
  const el = document.getElementById('status');
  el.textContent = t(key) !== key ? t(key) : explain(bad);
  el.classList.add('error');
  const start = document.getElementById('start');
  if (start) start.disabled = true;
  document.body.dataset.link = bad.code;
  return false;
}

/** Shows an error to the user in the page's status line. */
export function fail(e) {
  const el = document.getElementById('status');
  if (el) {
    el.textContent = explain(e);
    el.classList.add('error');
  }
  console.error(e);
}

/**
 * Shows captions in `element`: the last final lines and the current partial,
 * in two lines of large type. Returns a function to feed caption messages.
 */
export function captions(element) {
  const finals = [];
  let partial = '';
  // The text sits at the bottom of a box two lines high: the newest two lines show.
  const line = element.firstElementChild ?? element.appendChild(document.createElement('span'));
  const draw = () => {
    const text = [...finals.slice(-2), partial].filter(Boolean).join(' ');
    line.textContent = text;
    element.hidden = !text;
  };
  return (c) => {
    if (c.final) {
      finals.push(c.text);
      partial = '';
    } else {
      partial = c.text;
    }
    draw();
  };
}

/** The privacy indicator: shown while anything in the room is being captioned (and transcribed). */
export function captionIndicator(state, element) {
  const on = [state.floor.captions && t('floor'), ...state.channels.filter((c) => c.captions).map((c) => c.name)].filter(Boolean);
  element.hidden = on.length === 0;
  setText(element, on.length ? t('indicator.captions', { sources: new Intl.ListFormat(document.documentElement.lang).format(on) }) : '');
}

/** Shows, while the room is recorded, that it is: on every page of the room. */
export function recordingIndicator(state, element) {
  element.hidden = !state.recording;
  setText(element, state.recording ? t('indicator.recording') : '');
}

const keyedChildren = new WeakMap();

/**
 * Keeps `box`'s children in step with `items`, one element per key (`key(item)`): `make(item)`
 * creates an element only when its key appears, `update(element, item)` refreshes it on every
 * call, and it is removed only when its key goes (as is anything else in `box`). Elements that
 * stay are neither replaced nor moved unless the order changed, so a click in progress and
 * keyboard focus survive the room's state updates.
 */
export function keyed(box, items, key, make, update) {
  const old = keyedChildren.get(box) ?? new Map();
  const now = new Map();
  for (const item of items) {
    const k = key(item);
    if (now.has(k)) continue;
    const el = old.get(k) ?? make(item);
    update(el, item);
    now.set(k, el);
  }
  keyedChildren.set(box, now);
  const keep = new Set(now.values());
  for (const n of [...box.childNodes]) if (!keep.has(n)) n.remove();
  let at = box.firstChild;
  for (const el of now.values()) {
    if (el === at) at = at.nextSibling;
    else box.insertBefore(el, at);
  }
}

/** Sets a node's text only when it differs, so an unchanged element is left untouched. */
export function setText(node, text) {
  text = String(text ?? '');
  if (node.textContent !== text) node.textContent = text;
}
