// The host console of one room (host.html with a host token): channels and booths, captions,
// recording, floor return, invitations with QR codes, the audience's link, the chat, deleting the room.
import { checkLink, Session, inviteToken, show, fail, captionIndicator, recordingIndicator, keyed, setText, followConnection } from './tolk.js';
import { t, languageName } from './i18n.js';
import { boothChat } from './chat.js';

const linkWorks = checkLink();

const token = inviteToken();
const session = new Session();
let room;
let me = null;
let channels = [];
const chat = boothChat(session, document.getElementById('chat'), { role: 'host', me: () => me, channels: () => channels });

async function api(path, body, method = 'POST') {
  const r = await fetch(`/api/rooms/${encodeURIComponent(room)}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await r.json();
  if (!r.ok) throw Object.assign(new Error(json.message), { code: json.code });
  return json;
}

// The table and the channel lists are updated in place, keyed by channel (null: the Floor),
// so a click, a checkbox or an open list survives state updates, and keyboard focus stays.
let lastState = null;
function render(state) {
  lastState = state;
  channels = state.channels;
  chat.refresh();
  captionIndicator(state, document.getElementById('indicator'));
  const floor = { lang: null, name: t('floor'), captions: state.floor.captions, listeners: state.floor.listeners };
  keyed(document.getElementById('state'), [floor, ...state.channels], (c) => c.lang, (c) => {
    const tr = document.createElement('tr');
    const cap = document.createElement('td');
    cap.append(captionToggle(c.lang));
    const name = document.createElement('td');
    name.append(document.createElement('span'));
    if (c.lang !== null) {
      // A channel's name can be changed (the booth, its listeners and its transcript stay).
      const rename = document.createElement('button');
      rename.className = 'small';
      rename.onclick = async () => {
        const now = channels.find((x) => x.lang === c.lang)?.name ?? c.name;
        const next = prompt(t('host.rename_prompt', { lang: c.lang }), now);
        if (!next || next === now) return;
        try { render({ ...lastState, ...(await api(`/channels/${encodeURIComponent(c.lang)}`, { name: next }, 'PATCH')) }); } catch (e) { fail(e); }
      };
      name.append(' ', rename);
    }
    tr.append(name, document.createElement('td'), document.createElement('td'), cap);
    return tr;
  }, (tr, c) => {
    const [name, booth, count, cap] = tr.children;
    setText(name.firstChild, c.lang === null ? c.name : `${c.name} (${c.lang})`);
    if (c.lang !== null) {
      setText(name.lastChild, t('host.rename'));
      name.lastChild.setAttribute('aria-label', t('host.rename_channel', { channel: c.name }));
    }
    if (c.lang === null) {
      setText(booth, t('host.sources', { count: state.floor.sources }) + (state.floor.returned ? ' ' + t('host.returned', { channel: state.floor.returned }) : ''));
    } else {
      keyed(booth, c.members ?? [], (m) => m.id, (m) => {
        // A span holds the button and the space after it, as the look had it.
        const span = document.createElement('span');
        const b = document.createElement('button');
        b.onclick = () => session.send({ type: 'assign', channel: c.lang, peer: m.id });
        span.append(b, ' ');
        return span;
      }, (span, m) => {
        const b = span.firstChild;
        setText(b, [m.name, m.live && t('member.live'), m.muted && t('member.muted'), m.away && t('member.away')].filter(Boolean).join(' · '));
        b.setAttribute('aria-pressed', String(m.live));
        b.title = m.live ? t('host.on_air') : t('host.put_on_air');
        b.disabled = m.live || !m.publishing;
      });
      if (!c.members?.length) setText(booth, '—');
    }
    setText(count, c.listeners);
    cap.firstChild.checked = c.captions;
  });
  const none = { lang: '', name: t('host.none') };
  for (const sel of [document.getElementById('channel-select'), document.getElementById('return')]) {
    keyed(sel, [none, ...state.channels], (c) => c.lang, () => document.createElement('option'), (o, c) => {
      o.value = c.lang;
      setText(o, c.name);
    });
  }
  // Further channels an interpreter may publish into (bidirectional booths).
  keyed(document.getElementById('also'), state.channels, (c) => c.lang, () => document.createElement('option'), (o, c) => {
    o.value = c.lang;
    setText(o, `${c.name} (${languageName(c.lang)})`);
  });
  document.getElementById('return').value = state.floor.returned ?? '';
}

function captionToggle(source) {
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.title = t('host.captions_hint');
  box.setAttribute('aria-label', t('host.captions_hint'));
  box.onchange = () => session.send({ type: 'captions', source, on: box.checked });
  return box;
}

async function download(format) {
  const r = await fetch(`/api/rooms/${encodeURIComponent(room)}/transcript?format=${format}`, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) return fail(new Error((await r.json()).message));
  const a = document.createElement('a');
  a.href = URL.createObjectURL(await r.blob());
  a.download = `${room}.${format}`;
  a.click();
}
document.getElementById('vtt').onclick = (e) => { e.preventDefault(); download('vtt'); };
document.getElementById('txt').onclick = (e) => { e.preventDefault(); download('txt'); };
document.getElementById('delete-transcript').onclick = async () => {
  if (!confirm(t('host.confirm_delete_transcript'))) return;
  const r = await fetch(`/api/rooms/${encodeURIComponent(room)}/transcript`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  const j = await r.json();
  r.ok ? show('status', t('host.deleted_lines', { count: j.deleted })) : fail(j);
};

document.getElementById('return').onchange = (e) => session.send({ type: 'floor_return', channel: e.target.value || null });
session.addEventListener('notice', (e) => {
  const n = document.getElementById('notice');
  const d = e.detail;
  n.textContent = d.kind === 'captions_behind'
    ? t('notice.captions_behind', { source: d.channel ?? t('floor'), ms: parseInt(d.from, 10) })
    : d.kind === 'tap_sender'
      ? t('notice.tap_sender', { from: d.from })
      : d.kind === 'recording_stopped'
        ? t('notice.recording_stopped', { why: t(`recording.${d.from}`) })
        : t('notice.slow_down', { name: d.from, channel: d.channel });
  n.hidden = false;
  clearTimeout(n.timer);
  n.timer = setTimeout(() => (n.hidden = true), 8000);
});
session.addEventListener('state', (e) => render(e.detail));

// Recording: the button follows the room's state; the takes are listed from the API.
let recording = false;
function showRecording(state) {
  recordingIndicator(state, document.getElementById('recording'));
  const on = Boolean(state.recording);
  const b = document.getElementById('record');
  b.setAttribute('aria-pressed', String(on));
  setText(b, on ? t('host.record_stop') : t('host.record_start'));
  if (on !== recording) listTakes();
  recording = on;
}
session.addEventListener('state', (e) => showRecording(e.detail));
// While it runs, the take's files grow: the list follows every 5 s.
setInterval(() => { if (recording) listTakes(); }, 5000);
document.getElementById('record').onclick = () => session.send({ type: 'record', on: !recording });
const size = (n) => (n < 1e6 ? `${Math.round(n / 1e3)} kB` : `${(n / 1e6).toFixed(1)} MB`);
async function listTakes() {
  if (!room) return;
  const base = `/api/rooms/${encodeURIComponent(room)}/recordings`;
  const r = await fetch(base, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) return;
  const { takes } = await r.json();
  keyed(document.getElementById('takes'), takes, (take) => take.take, () => document.createElement('li'), (li, take) => {
    const when = new Date(take.started_at * 1000).toLocaleString(document.documentElement.lang);
    const parts = [document.createTextNode(take.running ? `${t('host.take_running', { when })}: ` : `${when}: `)];
    for (const f of take.files) {
      const a = document.createElement('a');
      // A signed link (valid an hour): the host's own token never goes into a URL.
      a.href = f.url;
      a.textContent = `${f.name.replace('.opus', '')} (${size(f.bytes)})`;
      parts.push(a, document.createTextNode(' '));
    }
    const del = document.createElement('button');
    del.textContent = t('host.delete');
    del.onclick = async () => {
      if (!confirm(t('host.confirm_delete_take', { when }))) return;
      const d = await fetch(`${base}/${take.take}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
      if (!d.ok) fail(await d.json());
      listTakes();
    };
    parts.push(del);
    li.replaceChildren(...parts);
  });
}
session.addEventListener('error', (e) => fail(e.detail));

document.getElementById('invite').onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const role = f.get('role');
    const inv = await api('/tokens', {
      role,
      channel: f.get('channel') || null,
      also: role === 'interpreter' ? f.getAll('also').filter((l) => l && l !== f.get('channel')) : [],
      name: f.get('name'),
      ttl_secs: Number(f.get('ttl')),
      qr: true,
    });
    showLink(document.getElementById('link'), inv);
  } catch (e) { fail(e); }
};

/** An invitation: its link (to open or copy), when it stops working, and its QR code. */
function showLink(box, inv) {
  const a = document.createElement('a');
  a.href = inv.url;
  a.textContent = inv.url;
  a.className = 'link';
  const copy = document.createElement('button');
  copy.type = 'button';
  copy.textContent = t('host.copy');
  copy.onclick = async () => {
    try {
      await navigator.clipboard.writeText(inv.url);
      copy.textContent = t('host.copied');
    } catch { /* no clipboard here: the link can be selected */ }
  };
  const until = document.createElement('p');
  until.className = 'sub';
  until.textContent = t('host.expires', { when: new Date(inv.expires_at * 1000).toLocaleString(document.documentElement.lang) });
  const revoke = document.createElement('button');
  revoke.type = 'button';
  revoke.textContent = t('host.revoke');
  revoke.onclick = () => revokeLink(inv.url, until);
  const parts = [a, ' ', copy, ' ', revoke, until];
  if (inv.qr) {
    const img = document.createElement('img');
    img.className = 'qr';
    img.alt = t('host.qr_alt');
    img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(inv.qr)}`;
    parts.push(img);
  }
  box.replaceChildren(...parts);
}

/** Revokes an invitation (a link made here, or one pasted): it cannot join any more. */
async function revokeLink(link, told) {
  if (!confirm(t('host.confirm_revoke'))) return;
  try {
    const r = await api('/revoke', { link });
    told.textContent = t('host.revoked', { name: r.name });
  } catch (e) { fail(e); }
}
document.getElementById('revoke').onsubmit = async (ev) => {
  ev.preventDefault();
  const field = ev.target.elements.link;
  await revokeLink(field.value.trim(), document.getElementById('revoke-status'));
  field.value = '';
};

// The audience's link: a listener link for a hall (shared by many phones) or an online audience,
// valid a week, with a QR code to put on a screen.
document.getElementById('audience-link').onclick = async () => {
  try {
    const inv = await api('/tokens', { role: 'listener', name: t('host.audience'), ttl_secs: 7 * 24 * 3600, qr: true });
    showLink(document.getElementById('audience'), inv);
  } catch (e) { fail(e); }
};
document.getElementById('add').onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    render(await api('/channels', { lang: f.get('lang'), name: f.get('name') || '' }));
    ev.target.reset();
  } catch (e) { fail(e); }
};

document.getElementById('delete-room').onclick = async () => {
  if (!confirm(t('host.confirm_delete_room', { room }))) return;
  const r = await fetch(`/api/rooms/${encodeURIComponent(room)}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) fail(await r.json());
};

followConnection(session, () => t('status.connected'));
// Shown once every handler is in place: nothing on it can be pressed before it works.
document.getElementById('room-console').hidden = false;
await linkWorks;
document.addEventListener('tolk-language', () => { if (lastState) render(lastState); listTakes(); });
try {
  // On every (re)join the room's state arrives again.
  await session.run(token, async (joined) => {
    me = joined;
    room = joined.room;
    show('room', t('room_of', { room: joined.room, name: joined.name }));
    render({ floor: { sources: 0, listeners: 0, returned: null, captions: false }, channels: joined.channels });
    listTakes();
  });
} catch (e) { fail(e); }
