// Booth chat on the interpreter console and the host page: lines shown as text (never markup),
// new lines announced without taking focus or keyboard, quick phrases, a number or a term shown
// large, and a sound cue only when the person turned it on.

import { audioContext } from './tolk.js';

// What partners say most, one click each (to the booth's own thread).
const QUICK = ['Ready when you are', 'Number?', 'Term?', 'Take over, please'];
// Lines kept on the page.
const SHOWN = 200;

function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

function checkbox(label, id) {
  const box = el('input', { type: 'checkbox', id });
  return [box, el('label', { htmlFor: id }, box, ' ', label)];
}

/** A short, quiet beep on the default output. */
function beep() {
  const ctx = audioContext();
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.frequency.value = 880;
  gain.gain.value = 0.05;
  osc.connect(gain).connect(ctx.destination);
  osc.start();
  osc.stop(ctx.currentTime + 0.08);
}

/**
 * Builds the chat into `root` (an empty element) and follows `session`'s `chat` messages.
 * `role` is 'interpreter' or 'host'; `me()` the joined message; `channels()` the room's
 * channels; `live()` whether this interpreter is on air now.
 */
export function boothChat(session, root, { role, me, channels, live = () => false }) {
  const log = el('ol', { className: 'chat-log', id: 'chat-log' });
  log.setAttribute('role', 'log');
  log.setAttribute('aria-live', 'polite');
  log.setAttribute('aria-label', 'Booth chat');
  const to = el('select', { id: 'chat-to' });
  const text = el('input', { id: 'chat-text', maxLength: 500, autocomplete: 'off', placeholder: 'Message' });
  text.setAttribute('aria-label', 'Message');
  const [big, bigLabel] = checkbox('Show large (a number or a term)', 'chat-big');
  const send = el('button', { id: 'chat-send', type: 'submit' }, 'Send');
  const form = el('form', { className: 'row', id: 'chat-form' }, el('label', { htmlFor: 'chat-to' }, 'To'), to, text, bigLabel, send);
  const [cue, cueLabel] = checkbox('Sound on a new message', 'chat-cue');
  const [cueLive, cueLiveLabel] = checkbox('also while I am live (into my headphones)', 'chat-cue-live');
  const quick = el('div', { className: 'row', id: 'chat-quick' });
  quick.setAttribute('role', 'group');
  quick.setAttribute('aria-label', 'Quick messages to your booth');
  root.append(el('h2', {}, 'Booth chat'), log, form);
  if (role === 'interpreter') {
    for (const q of QUICK) {
      quick.append(el('button', { type: 'button', onclick: () => say('booth', null, q, false) }, q));
    }
    root.append(quick, el('div', { className: 'row' }, cueLabel, cueLiveLabel));
  } else {
    root.append(el('div', { className: 'row' }, cueLabel));
  }
  const status = el('p', { className: 'sub', id: 'chat-status' });
  root.append(status);

  // Where a message can go: an interpreter's booth or its line to the hosts; a host's line to
  // one booth or to all of them. Kept in place so an open list survives updates.
  const targets = () => role === 'interpreter'
    ? [['booth', 'my booth partners'], ['hosts', 'the hosts (technician)']]
    : [['', 'all booths'], ...channels().map((c) => [c.lang, `booth ${c.name} (${c.lang})`])];
  const refresh = () => {
    const want = targets();
    const have = [...to.options].map((o) => o.value).join('\n');
    if (have === want.map(([v]) => v).join('\n')) return;
    const keep = to.value;
    to.replaceChildren(...want.map(([v, label]) => el('option', { value: v }, label)));
    if (want.some(([v]) => v === keep)) to.value = keep;
  };
  refresh();

  function say(thread, channel, body, large) {
    status.textContent = '';
    const msg = { type: 'chat', thread, text: body, big: large };
    if (channel !== null) msg.channel = channel;
    session.send(msg);
  }
  form.onsubmit = (ev) => {
    ev.preventDefault();
    const body = text.value.trim();
    if (!body) return;
    if (role === 'interpreter') say(to.value, null, body, big.checked);
    else say('hosts', to.value || null, body, big.checked);
    text.value = '';
    big.checked = false;
  };

  const line = (m) => {
    const mine = m.from_id === me()?.id;
    const where = m.thread === 'booth' ? 'booth' : m.host ? (m.channel ? `host to ${m.channel}` : 'host to all booths') : `to the hosts from ${m.channel}`;
    const li = el('li', { className: `chat-${m.thread}${m.big ? ' big' : ''}${mine ? ' mine' : ''}` },
      el('span', { className: 'who' }, `${m.from}${mine ? ' (you)' : ''}`),
      el('span', { className: 'where' }, ` · ${where}: `),
      el('span', { className: 'text' }, m.text));
    li.dataset.id = m.id;
    return li;
  };
  session.addEventListener('chat', (e) => {
    const { messages, past } = e.detail;
    if (past) log.replaceChildren();
    const seen = new Set([...log.children].map((li) => li.dataset.id));
    for (const m of messages) if (!seen.has(String(m.id))) log.append(line(m));
    while (log.children.length > SHOWN) log.firstChild.remove();
    log.scrollTop = log.scrollHeight;
    const others = !past && messages.some((m) => m.from_id !== me()?.id);
    if (others && cue.checked && (!live() || cueLive.checked)) beep();
  });
  session.addEventListener('error', (e) => {
    if (['rate_limited', 'too_large'].includes(e.detail.code) || /chat/.test(e.detail.message)) status.textContent = e.detail.message;
  });
  return { refresh };
}
