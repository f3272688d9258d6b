// The browser side of tolk's signalling protocol (written down in src/protocol.rs):
// join with a token, offer one audio track, select a channel, follow room state.

/** The invitation token, carried in the URL fragment so it never reaches server logs. */
export function inviteToken() {
  return new URLSearchParams(location.hash.slice(1)).get('token');
}

/** One signalling session over a WebSocket. Emits 'state', 'booth', 'selected', 'error', 'close'. */
export class Session extends EventTarget {
  constructor() {
    super();
    this.waiting = [];
  }

  async open() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    this.ws = new WebSocket(`${scheme}://${location.host}/ws`);
    await new Promise((ok, fail) => {
      this.ws.onopen = ok;
      this.ws.onerror = () => fail(new Error('cannot reach the tolk server'));
    });
    this.ws.onmessage = (e) => this.receive(JSON.parse(e.data));
    this.ws.onclose = () => this.dispatchEvent(new CustomEvent('close'));
  }

  receive(msg) {
    const i = this.waiting.findIndex((w) => w.types.includes(msg.type));
    if (i >= 0) {
      const [w] = this.waiting.splice(i, 1);
      msg.type === 'error' ? w.fail(new Error(msg.message)) : w.ok(msg);
      if (msg.type !== 'selected') return;
    }
    this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
  }

  request(msg, type) {
    return new Promise((ok, fail) => {
      this.waiting.push({ types: [type, 'error'], ok, fail });
      this.ws.send(JSON.stringify(msg));
    });
  }

  join(token, publish) {
    return this.request({ type: 'join', token, ...(publish ? { publish } : {}) }, 'joined');
  }

  /** Opens the media connection: sends `stream`'s track if given, receives if `receive`. */
  async connect({ stream = null, receive = true }) {
    const pc = new RTCPeerConnection();
    const direction = stream ? (receive ? 'sendrecv' : 'sendonly') : 'recvonly';
    const tr = pc.addTransceiver('audio', { direction, streams: stream ? [stream] : [] });
    if (stream) await tr.sender.replaceTrack(stream.getAudioTracks()[0]);
    const remote = new Promise((ok) => (pc.ontrack = (e) => ok(new MediaStream([e.track]))));
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await this.request({ type: 'offer', sdp: pc.localDescription.sdp }, 'answer');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    this.pc = pc;
    return { pc, remote: receive ? remote : null };
  }

  select(channel, only = false) {
    return this.request({ type: 'select', channel, only }, 'selected');
  }

  /** Fire-and-forget requests; refusals arrive as 'error' events. */
  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }
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
 * The interpreter's return: volume, bass and treble, then a hard limiter
 * (hearing protection: nothing reaches the headphones above -6 dBFS).
 * Returns the analyser and the controls.
 */
export function console_return(stream, audio) {
  audio.srcObject = stream;
  audio.muted = true; // the WebAudio graph below plays it
  audio.play().catch(() => {});
  const ctx = audioContext();
  const source = ctx.createMediaStreamSource(stream);
  const volume = ctx.createGain();
  const bass = ctx.createBiquadFilter();
  bass.type = 'lowshelf';
  bass.frequency.value = 250;
  const treble = ctx.createBiquadFilter();
  treble.type = 'highshelf';
  treble.frequency.value = 4000;
  const limiter = ctx.createDynamicsCompressor();
  limiter.threshold.value = -6;
  limiter.knee.value = 0;
  limiter.ratio.value = 20;
  limiter.attack.value = 0.001;
  limiter.release.value = 0.1;
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 4096;
  analyser.smoothingTimeConstant = 0;
  source.connect(volume).connect(bass).connect(treble).connect(limiter);
  limiter.connect(ctx.destination);
  source.connect(analyser);
  return { analyser, volume, bass, treble };
}

export function analyse(stream) {
  const ctx = audioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 4096;
  analyser.smoothingTimeConstant = 0;
  ctx.createMediaStreamSource(stream).connect(analyser);
  return analyser;
}

/** Drives a level meter element (its --level custom property, 0..1) from an analyser. */
export function meter(analyser, element) {
  const buf = new Float32Array(analyser.fftSize);
  const draw = () => {
    analyser.getFloatTimeDomainData(buf);
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

/** Shows an error to the user in the page's status line. */
export function fail(e) {
  const el = document.getElementById('status');
  if (el) {
    el.textContent = e.message || String(e);
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
  const draw = () => {
    const text = [...finals.slice(-2), partial].filter(Boolean).join(' ');
    element.textContent = text;
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
  const on = [state.floor.captions && 'Floor', ...state.channels.filter((c) => c.captions).map((c) => c.name)].filter(Boolean);
  element.hidden = on.length === 0;
  element.textContent = on.length ? `● Captions on, transcript kept: ${on.join(', ')}` : '';
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
