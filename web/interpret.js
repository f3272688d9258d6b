// The interpreter console: the booth, the handover, what the interpreter hears, consent to be recorded, the chat.
import { checkLink, Session, inviteToken, microphone, console_return, analyse, meter, show, fail, captions, captionIndicator, keyed, setText, followConnection } from './tolk.js';
import { init, t, languagePicker } from './i18n.js';

await init();
document.body.prepend(languagePicker());
// Start is enabled at the end, once every handler is in place (and only for a link that works).
const linkWorks = checkLink();
import { boothChat } from './chat.js';

const session = new Session();
const $ = (id) => document.getElementById(id);
window.tolk = { session };
let me = null;
let channels = [];
let booth = null;
// Whether this interpreter agreed to be recorded: null until asked (when a recording runs).
let consent = null;
boothChat(session, $('chat'), { role: 'interpreter', me: () => me, channels: () => channels, live: () => Boolean(booth?.live) });

// Rows of toggle buttons, one per key, updated in place: a click or keyboard focus survives
// the booth and state updates. `items` are { key, label, pressed, onclick }.
function buttons(box, items) {
  keyed(box, items, (i) => i.key, (i) => {
    const b = document.createElement('button');
    b.dataset.key = i.key ?? 'floor';
    b.onclick = i.onclick;
    return b;
  }, (b, i) => {
    setText(b, i.label);
    b.setAttribute('aria-pressed', String(i.pressed));
  });
}

function render() {
  if (!booth || !me) return;
  const live = booth.live;
  const el = $('live');
  el.textContent = live ? t('interpret.live') : t('interpret.standby');
  el.classList.toggle('on', live);
  window.tolk.live = live;
  const channel = channels.find((c) => c.lang === booth.channel);
  show('target', t('interpret.target', { channel: channel ? channel.name : booth.channel, lang: booth.channel }));
  show('audience', t('listeners', { count: booth.listeners }));
  $('warning').hidden = !booth.warning;
  $('warning').textContent = booth.warning_code ? t(`warning.${booth.warning_code}`) : booth.warning ?? '';
  $('mute').setAttribute('aria-pressed', String(booth.muted));
  $('mute').textContent = booth.muted ? t('interpret.unmute') : t('interpret.mute');
  keyed($('members'), booth.members, (m) => m.id, () => document.createElement('li'), (li, m) => {
    const tags = [m.live && t('member.live'), m.ready && t('member.ready'), m.muted && t('member.muted'), m.away ? t('member.away') : !m.publishing && t('member.no_microphone'), booth.recording && !m.consent && t('member.not_recorded')].filter(Boolean);
    setText(li, `${m.id === me.id ? t('member.you', { name: m.name }) : m.name}${tags.length ? ' · ' + tags.join(' · ') : ''}`);
    li.classList.toggle('on', m.live);
  });
  const recording = Boolean(booth.recording);
  $('consent').hidden = !recording || consent !== null;
  $('recording').hidden = !recording;
  setText($('recording-text'), !recording ? '' : booth.recorded
    ? t('consent.recorded')
    : consent === true
      ? t('consent.agreed')
      : t('consent.not_recorded'));
  $('consent-change').hidden = consent === null;
  setText($('consent-change'), consent ? t('consent.withdraw') : t('consent.give'));
  const silent = $('relay-silent');
  silent.hidden = !booth.relay_silent;
  if (booth.relay_silent) {
    setText($('relay-silent-text'), t('interpret.relay_silent', { channel: channels.find((c) => c.lang === booth.input)?.name ?? booth.input }));
  }
  const partners = booth.members.some((m) => m.id !== me.id && m.publishing);
  $('ready').disabled = live;
  $('take').disabled = live;
  $('go').disabled = !live || !partners;
  buttons($('inputs'), [
    { key: null, label: t('floor'), pressed: booth.input === null, onclick: () => session.send({ type: 'input', channel: null }) },
    ...channels.filter((c) => c.lang !== booth.channel).map((c) =>
      ({ key: c.lang, label: t('interpret.relay', { channel: c.name }), pressed: booth.input === c.lang, onclick: () => session.send({ type: 'input', channel: c.lang }) })),
  ]);
  const outs = me.publish;
  $('outputs').hidden = $('output-title').hidden = outs.length < 2;
  buttons($('outputs'), outs.map((l) =>
    ({ key: l, label: channels.find((c) => c.lang === l)?.name ?? l, pressed: l === booth.channel, onclick: () => session.send({ type: 'publish', channel: l }) })));
}

session.addEventListener('booth', (e) => { booth = e.detail; window.tolk.booth = booth; render(); });
session.addEventListener('state', (e) => {
  channels = e.detail.channels;
  render();
  captionIndicator(e.detail, $('indicator'));
});
// The floor's captions, when the host turned them on.
const caption = captions($('captions'));
session.addEventListener('caption', (e) => { if (!e.detail.source) caption(e.detail); });
session.addEventListener('error', (e) => fail(e.detail));
followConnection(session, () => t('status.connected'));
document.addEventListener('tolk-language', () => render());

const answer = (yes) => {
  consent = yes;
  session.send({ type: 'consent', record: yes });
  render();
};
$('consent-yes').onclick = () => answer(true);
$('consent-no').onclick = () => answer(false);
$('consent-change').onclick = () => answer(!consent);

$('hear-floor').onclick = () => session.send({ type: 'input', channel: null });
$('ready').onclick = () => session.send({ type: 'handover', action: 'ready' });
$('go').onclick = () => session.send({ type: 'handover', action: 'go' });
$('take').onclick = () => session.send({ type: 'handover', action: 'take' });
// What the interpreter chose with Mute, apart from a cough held now: a reconnect restores it.
let userMuted = false;
$('mute').onclick = () => {
  if (!booth) return;
  userMuted = !booth.muted;
  session.send({ type: 'mute', muted: userMuted || coughing });
};
$('slow').onclick = () => { session.send({ type: 'slow_down' }); show('status', t('interpret.asked_slow')); };
// Cough button: muted while held, by pointer or by the Space (or Enter) key; on release the
// microphone returns to how it was. The pointer is captured, so a page that moves under it (a
// warning that comes or goes) cannot release it; only lifting it does.
let coughing = false;
const cough = $('cough');
const hold = () => {
  if (coughing || !booth) return;
  coughing = true;
  cough.setAttribute('aria-pressed', 'true');
  session.send({ type: 'mute', muted: true });
};
const release = () => {
  if (!coughing) return;
  coughing = false;
  cough.setAttribute('aria-pressed', 'false');
  session.send({ type: 'mute', muted: userMuted });
};
cough.addEventListener('pointerdown', (e) => {
  if (e.button !== 0) return;
  cough.setPointerCapture(e.pointerId);
  hold();
});
cough.addEventListener('pointerup', release);
cough.addEventListener('pointercancel', release);
cough.addEventListener('lostpointercapture', release);
const holdKey = (e) => e.key === ' ' || e.key === 'Enter';
cough.addEventListener('keydown', (e) => {
  if (!holdKey(e)) return;
  e.preventDefault();
  if (!e.repeat) hold();
});
cough.addEventListener('keyup', (e) => {
  if (!holdKey(e)) return;
  e.preventDefault();
  release();
});
cough.addEventListener('blur', release);
// A long press on a phone opens no menu and selects nothing.
cough.addEventListener('contextmenu', (e) => e.preventDefault());

// Run on every (re)join: the microphone and the return again, then what the interpreter had
// (booth, input, mute); being live comes back by itself unless a partner took over meanwhile.
async function setup(mic, joined, again) {
  const before = booth;
  me = joined;
  channels = me.channels;
  show('room', t('room_of', { room: me.room, name: me.name }));
  const { remote } = await session.connect({ stream: mic, receive: true });
  const ret = await console_return(await remote, $('audio'));
  window.tolk.headphonesPeak = ret.peak;
  meter(ret.analyser, $('return'));
  window.tolk.analyser = ret.analyser;
  const apply = () => {
    ret.volume.gain.value = Number($('volume').value);
    ret.bass.gain.value = Number($('bass').value);
    ret.treble.gain.value = Number($('treble').value);
  };
  apply();
  $('volume').oninput = $('bass').oninput = $('treble').oninput = apply;
  if (again && before) {
    if (before.input !== null) session.send({ type: 'input', channel: before.input });
    // As chosen (a cough released while the connection was down is released now too).
    if (before.muted !== (userMuted || coughing)) session.send({ type: 'mute', muted: userMuted || coughing });
    if (consent !== null) session.send({ type: 'consent', record: consent });
  }
  render();
}

$('start').onclick = async (ev) => {
  ev.target.disabled = true;
  try {
    const mic = await microphone();
    meter(analyse(mic), $('mic'));
    await session.run(inviteToken(), (joined, again) => setup(mic, joined, again), () => booth?.channel);
    $('console').hidden = false;
    $('start').hidden = true;
  } catch (e) { fail(e); ev.target.disabled = false; }
};

if (await linkWorks) document.getElementById('start').disabled = false;
