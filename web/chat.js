// Booth chat on the interpreter console and the host page: lines shown as text (never markup),
// new lines announced without taking focus or keyboard, quick phrases, a number or a term shown
// large, and a sound cue only when the person turned it on.

import { audioContext, explain } from './tolk.js';
import { t } from './i18n.js';

// What partners say most, one click each (to the booth's own thread).
const QUICK = ['chat.quick.ready', 'chat.quick.number', 'chat.quick.term', 'chat.quick.take'];
// Lines kept on the page.
const SHOWN = 200;

function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

/** Text that follows the page's language (translated again when it changes). */
function said(key) {
  const span = el('span', {}, t(key));
  span.dataset.i18n = key;
  return span;
}

/** Sets a translated attribute that follows the page's language. */
function attr(e, name, key) {
  e.setAttribute(name, t(key));
  e.setAttribute(`data-i18n-${name}`, key);
}

function checkbox(key, id) {
  const box = el('input', { type: 'checkbox', id });
  return [box, el('label', { htmlFor: id }, box, ' ', said(key))];
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
  // A live region around the list: new lines are read out, and the list stays a list.
  const log = el('ol', { className: 'chat-log', id: 'chat-log' });
  const logBox = el('div', {}, log);
  logBox.setAttribute('role', 'log');
  logBox.setAttribute('aria-live', 'polite');
  attr(logBox, 'aria-label', 'chat.title');
  const to = el('select', { id: 'chat-to' });
  const text = el('input', { id: 'chat-text', maxLength: 500, autocomplete: 'off' });
  attr(text, 'placeholder', 'chat.message');
  attr(text, 'aria-label', 'chat.message');
  const [big, bigLabel] = checkbox('chat.big', 'chat-big');
  const send = el('button', { id: 'chat-send', type: 'submit' }, said('chat.send'));
  const form = el('form', { className: 'row', id: 'chat-form' }, el('label', { htmlFor: 'chat-to' }, said('chat.to')), to, text, bigLabel, send);
  const [cue, cueLabel] = checkbox('chat.cue', 'chat-cue');
  const [cueLive, cueLiveLabel] = checkbox('chat.cue_live', 'chat-cue-live');
  const quick = el('div', { className: 'row', id: 'chat-quick' });
  quick.setAttribute('role', 'group');
  attr(quick, 'aria-label', 'chat.quick');
  root.append(el('h2', {}, said('chat.title')), logBox, form);
  if (role === 'interpreter') {
    for (const q of QUICK) {
      quick.append(el('button', { type: 'button', onclick: () => say('booth', null, t(q), false) }, said(q)));
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
    ? [['booth', t('chat.to_booth')], ['hosts', t('chat.to_hosts')]]
    : [['', t('chat.to_all')], ...channels().map((c) => [c.lang, t('chat.to_channel', { channel: c.name, lang: c.lang })])];
  const refresh = () => {
    const want = targets();
    const have = [...to.options].map((o) => `${o.value}\t${o.textContent}`).join('\n');
    if (have === want.map(([v, label]) => `${v}\t${label}`).join('\n')) return;
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
    const where = m.thread === 'booth'
      ? t('chat.where_booth')
      : m.host ? (m.channel ? t('chat.where_host_to', { channel: m.channel }) : t('chat.where_host_all')) : t('chat.where_to_hosts', { channel: m.channel });
    const li = el('li', { className: `chat-${m.thread}${m.big ? ' big' : ''}${mine ? ' mine' : ''}` },
      el('span', { className: 'who' }, mine ? t('member.you', { name: m.from }) : m.from),
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
    if (['rate_limited', 'too_large'].includes(e.detail.code) || /chat/.test(e.detail.message)) status.textContent = explain(e.detail);
  });
  document.addEventListener('tolk-language', refresh);
  return { refresh };
}
