// The listener page: choose the Floor or a channel, hear it, follow captions and the room.
import { Session, inviteToken, play, meter, show, fail, captions, captionIndicator, recordingIndicator, keyed, setText, followConnection } from './tolk.js';
import { init, t, languageName, languagePicker } from './i18n.js';

await init();
document.body.prepend(languagePicker());

const session = new Session();
let current = null;
let channels = [];
window.tolk = { session };

// One button per channel, updated in place: a click or keyboard focus survives state updates.
function render() {
  const all = [{ lang: null, name: t('listen.floor') }, ...channels];
  keyed(document.getElementById('channels'), all, (c) => c.lang, (c) => {
    const b = document.createElement('button');
    b.dataset.channel = c.lang ?? 'floor';
    b.append(document.createTextNode(''), document.createElement('small'));
    b.onclick = async () => {
      try {
        await session.select(c.lang, document.getElementById('only').checked);
      } catch (e) { fail(e); }
    };
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
}

session.addEventListener('state', (e) => {
  channels = e.detail.channels;
  render();
  captionIndicator(e.detail, document.getElementById('indicator'));
  recordingIndicator(e.detail, document.getElementById('recording'));
});
let caption = captions(document.getElementById('captions'));
session.addEventListener('caption', (e) => {
  if (document.getElementById('show-captions').checked) caption(e.detail);
});
document.getElementById('only').onchange = async (e) => {
  if (current) await session.select(current, e.target.checked).catch(fail);
};
session.addEventListener('selected', (e) => {
  current = e.detail.channel;
  caption = captions(document.getElementById('captions'));
  document.getElementById('captions').hidden = true;
  render();
  say();
});
session.addEventListener('error', (e) => fail(e.detail));
followConnection(session, () => (current ? t('listen.listening_to', { channel: channels.find((c) => c.lang === current)?.name ?? current }) : t('listen.connected')));
// The status line says what is playing.
function say() {
  const heard = channels.find((c) => c.lang === current)?.name ?? current;
  show('status', current ? t('listen.listening_to', { channel: heard }) : t('listen.listening_floor'));
}
// A new language: the buttons and the status line again.
document.addEventListener('tolk-language', () => {
  render();
  if (session.state === 'connected') say();
});

// Run on every (re)join: media again, and the channel the person had.
async function setup(joined, again) {
  show('room', t('room_of', { room: joined.room, name: joined.name }));
  channels = joined.channels;
  // A link made for a channel starts on it.
  if (!again && joined.channel) current = joined.channel;
  render();
  const { remote } = await session.connect({ receive: true });
  const analyser = play(await remote, document.getElementById('audio'));
  window.tolk.analyser = analyser;
  meter(analyser, document.getElementById('meter'));
  const only = document.getElementById('only').checked;
  if (again && (current !== null || only)) await session.select(current, only);
}

document.getElementById('start').onclick = async (ev) => {
  ev.target.disabled = true;
  try {
    await session.run(inviteToken(), setup);
    ev.target.hidden = true;
    say();
  } catch (e) { fail(e); ev.target.disabled = false; }
};
