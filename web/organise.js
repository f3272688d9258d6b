// The organiser's page (host.html without a token): sign in with the server's API key, see the
// rooms, create one with its channels, and open any of them as its host.
import { explain, keyed, setText } from './tolk.js';
import { t, languageName } from './i18n.js';

const $ = (id) => document.getElementById(id);
const KEY = 'tolk.apiKey';

function status(text, error = false) {
  const el = $('organise-status');
  el.textContent = text;
  el.classList.toggle('error', error);
}

/** Calls the API with the organiser's key; throws the API's error (code and message). */
async function api(method, path, body) {
  let key = '';
  try { key = sessionStorage.getItem(KEY) ?? ''; } catch { /* not kept: asked again */ }
  const r = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(json.message ?? r.statusText), { code: json.code });
  return json;
}

/** Opens a room's host console: a host link made with the key, then the page again with it. */
async function openRoom(id) {
  const inv = await api('POST', `/api/rooms/${encodeURIComponent(id)}/tokens`, { role: 'host', name: t('organise.organiser') });
  location.hash = `token=${inv.token}`;
  location.reload();
}

async function showRooms() {
  const { rooms } = await api('GET', '/api/rooms');
  $('login').hidden = true;
  $('rooms-panel').hidden = false;
  keyed($('rooms'), rooms, (r) => r.id, () => {
    const li = document.createElement('li');
    const open = document.createElement('button');
    li.append(document.createElement('span'), ' ', open);
    return li;
  }, (li, r) => {
    const names = r.channels.map((c) => c.name || c.lang).join(', ');
    setText(li.firstChild, `${r.id}${names ? ` · ${names}` : ''}`);
    const open = li.lastChild;
    setText(open, t('organise.open'));
    open.setAttribute('aria-label', t('organise.open_room', { room: r.id }));
    open.onclick = () => openRoom(r.id).catch((e) => status(explain(e), true));
  });
  status(rooms.length ? '' : t('organise.no_rooms'));
}

$('login').onsubmit = async (ev) => {
  ev.preventDefault();
  try { sessionStorage.setItem(KEY, $('api-key').value.trim()); } catch { /* kept for this call only */ }
  try {
    await showRooms();
  } catch (e) {
    status(e.code === 'bad_token' || e.code === 'forbidden' ? t('organise.wrong_key') : explain(e), true);
  }
};

$('create').onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const tags = String(f.get('channels')).split(',').map((s) => s.trim()).filter(Boolean);
  // Each channel named in its own language ("español", "Deutsch"), as its listeners read it.
  const channels = tags.map((lang) => ({ lang, name: languageName(lang, lang) }));
  const floor = String(f.get('floor_lang')).trim();
  try {
    await api('POST', '/api/rooms', { id: String(f.get('id')).trim(), floor_lang: floor || null, channels });
    await openRoom(String(f.get('id')).trim());
  } catch (e) {
    status(explain(e), true);
  }
};

// Shown once every handler is in place: a form sent before would leave the page.
$('organiser').hidden = false;

// Signed in already in this tab (back from a room): the rooms at once.
try {
  if (sessionStorage.getItem(KEY)) await showRooms();
} catch { /* the key no longer works: sign in again */ }
