// The listener page: choose the Floor or a channel and its balance, hear it, follow captions and the room.
import { checkLink, Session, inviteToken, play, meter, show, fail, captions, captionIndicator, recordingIndicator, keyed, setText, followConnection } from './tolk.js';
import { init, t, languageName, languagePicker } from './i18n.js';

await init();
document.body.prepend(languagePicker());
// Start is enabled at the end, once every handler is in place (and only for a link that works).
const linkWorks = checkLink();

const $ = (id) => document.getElementById(id);
const session = new Session();
// What plays: the Floor (null) or a channel, and the channel's balance step.
let current = null;
let balance = 2;
let channels = [];
window.tolk = { session };

const nameOf = (lang) => channels.find((c) => c.lang === lang)?.name ?? lang;

async function choose(channel, step = balance) {
  try {
    await session.select(channel, step);
  } catch (e) { fail(e); }
}

// One button per channel, updated in place: a click or keyboard focus survives state updates.
function render() {
  const all = [{ lang: null, name: t('listen.floor') }, ...channels];
  keyed($('channels'), all, (c) => c.lang, (c) => {
    const b = document.createElement('button');
    b.dataset.channel = c.lang ?? 'floor';
    b.append(document.createTextNode(''), document.createElement('small'));
    b.onclick = () => choose(c.lang);
    return b;
  }, (b, c) => {
    b.setAttribute('aria-pressed', String(c.lang === current));
    setText(b.firstChild, c.name);
    // The channel's own name (as the host wrote it, in its language), then its language in the
    // listener's, and whether an interpreter is on air.
    const state = c.lang ? t(c.live ? 'listen.live' : 'listen.no_interpreter') : t('listen.original');
    const named = c.lang ? languageName(c.lang) : '';
    setText(b.lastChild, named && named !== c.name ? `${named} · ${state}` : state);
  });
  const slider = $('balance');
  slider.disabled = current === null;
  slider.value = String(balance);
  const step = t(`balance.${balance}`);
  slider.setAttribute('aria-valuetext', step);
  setText($('balance-text'), current === null ? '' : step);
}

// The status line (and the phone's lock screen) say what is playing.
function say() {
  const text = current === null
    ? t('listen.listening_floor')
    : balance === 2 ? t('listen.listening_to', { channel: nameOf(current) })
      : t('listen.listening_balance', { channel: nameOf(current), balance: t(`balance.${balance}`) });
  show('status', text);
  if ('mediaSession' in navigator && session.room) {
    navigator.mediaSession.metadata = new MediaMetadata({
      title: current === null ? t('listen.floor') : nameOf(current),
      artist: session.room,
      album: 'tolk',
    });
  }
}

session.addEventListener('state', (e) => {
  channels = e.detail.channels;
  render();
  captionIndicator(e.detail, $('indicator'));
  recordingIndicator(e.detail, $('recording'));
});
let caption = captions($('captions'));
session.addEventListener('caption', (e) => {
  if ($('show-captions').checked) caption(e.detail);
});
$('show-captions').onchange = (e) => { if (!e.target.checked) $('captions').hidden = true; };
$('balance').onchange = (e) => { if (current !== null) choose(current, Number(e.target.value)); };
$('volume').oninput = (e) => { $('audio').volume = Number(e.target.value); };
const size = $('caption-size');
try { size.value = localStorage.getItem('tolk.captionSize') || size.value; } catch { /* not remembered */ }
const applySize = () => {
  $('captions').dataset.size = size.value;
  try { localStorage.setItem('tolk.captionSize', size.value); } catch { /* not remembered */ }
};
size.onchange = applySize;
applySize();

session.addEventListener('selected', (e) => {
  const changed = e.detail.channel !== current;
  current = e.detail.channel;
  // The balance is the person's: kept while they hear the Floor, for the next channel.
  if (current !== null) balance = e.detail.balance ?? 2;
  if (changed) {
    caption = captions($('captions'));
    $('captions').hidden = true;
  }
  render();
  say();
});
session.addEventListener('error', (e) => fail(e.detail));
followConnection(session, () => (current === null ? t('listen.connected') : t('listen.listening_to', { channel: nameOf(current) })));
// A new language: the buttons and the status line again.
document.addEventListener('tolk-language', () => {
  render();
  if (session.state === 'connected') say();
});

// On a phone: the screen stays on while listening (the lock is given back when the page is
// hidden, and taken again when it shows), and the lock screen's controls pause and switch.
let wakeLock = null;
async function keepAwake() {
  if (!('wakeLock' in navigator) || document.visibilityState !== 'visible' || wakeLock) return;
  try {
    wakeLock = await navigator.wakeLock.request('screen');
    wakeLock.addEventListener('release', () => { wakeLock = null; });
  } catch { /* refused (battery saver): the screen may sleep, the sound goes on */ }
  window.tolk.wakeLock = Boolean(wakeLock);
}
document.addEventListener('visibilitychange', keepAwake);
function mediaControls() {
  if (!('mediaSession' in navigator)) return;
  const audio = $('audio');
  const all = () => [null, ...channels.map((c) => c.lang)];
  const move = (by) => {
    const list = all();
    choose(list[(list.indexOf(current) + by + list.length) % list.length]);
  };
  const actions = {
    play: () => { audio.muted = false; navigator.mediaSession.playbackState = 'playing'; },
    pause: () => { audio.muted = true; navigator.mediaSession.playbackState = 'paused'; },
    nexttrack: () => move(1),
    previoustrack: () => move(-1),
  };
  for (const [action, run] of Object.entries(actions)) {
    try { navigator.mediaSession.setActionHandler(action, run); } catch { /* not offered here */ }
  }
  navigator.mediaSession.playbackState = 'playing';
}

// Run on every (re)join: media again, and the channel and balance the person had.
async function setup(joined, again) {
  show('room', t('room_of', { room: joined.room, name: joined.name }));
  session.room = joined.room;
  channels = joined.channels;
  // A link made for a channel starts on it.
  if (!again && joined.channel) current = joined.channel;
  render();
  const { remote } = await session.connect({ receive: true });
  const analyser = play(await remote, $('audio'));
  window.tolk.analyser = analyser;
  meter(analyser, $('meter'));
  if (again && (current !== null || balance !== 2)) await session.select(current, balance);
}

$('start').onclick = async (ev) => {
  ev.target.disabled = true;
  try {
    await session.run(inviteToken(), setup);
    ev.target.hidden = true;
    say();
    mediaControls();
    await keepAwake();
  } catch (e) { fail(e); ev.target.disabled = false; }
};

if (await linkWorks) document.getElementById('start').disabled = false;
