// The pages' language: chosen on the page (remembered), else the browser's; messages from one
// catalogue per language (web/i18n/<lang>.json), plurals by Intl.PluralRules, language names by
// Intl.DisplayNames. Static text is marked in the HTML (data-i18n, data-i18n-<attribute>).

/** The languages with a catalogue; the first is the fallback for a missing message. */
export const LANGUAGES = ['en', 'es', 'fr', 'de', 'pt', 'ar'];
const RTL = new Set(['ar']);
const STORED = 'tolk.language';

let lang = 'en';
let messages = {};
let fallback = {};
const plural = new Map();

async function catalogue(l) {
  const r = await fetch(`i18n/${l}.json`);
  if (!r.ok) throw new Error(`no catalogue for ${l}`);
  return r.json();
}

/** The person's language: the one chosen on a page, else the first the browser prefers that we have. */
function preferred() {
  let stored = null;
  try { stored = localStorage.getItem(STORED); } catch { /* storage off: the browser's */ }
  if (LANGUAGES.includes(stored)) return stored;
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return 'en';
}

/** Loads the catalogues and translates the page; call once before anything is shown. */
export async function init() {
  // Without its catalogue a page still works: `t()` then shows each message's key.
  fallback = await catalogue('en').catch(() => ({}));
  await use(preferred());
}

async function use(l) {
  messages = l === 'en' ? fallback : await catalogue(l).catch(() => fallback);
  lang = l;
  document.documentElement.lang = l;
  document.documentElement.dir = RTL.has(l) ? 'rtl' : 'ltr';
  translate(document);
  document.dispatchEvent(new CustomEvent('tolk-language', { detail: l }));
}

/** The language the page speaks now. */
export function language() {
  return lang;
}

/**
 * The message `key` with `{name}` replaced from `vars`; a message with plural forms picks the
 * one `vars.count` needs in this language. Numbers are written the language's way.
 */
export function t(key, vars = {}) {
  let m = messages[key] ?? fallback[key] ?? key;
  if (typeof m === 'object') {
    if (!plural.has(lang)) plural.set(lang, new Intl.PluralRules(lang));
    m = m[plural.get(lang).select(Number(vars.count ?? 0))] ?? m.other;
  }
  return m.replace(/\{(\w+)\}/g, (whole, k) => {
    const v = vars[k];
    if (v === undefined || v === null) return whole;
    return typeof v === 'number' ? v.toLocaleString(lang) : String(v);
  });
}

/** A language's name, as `inLanguage` says it (the page's language by default). */
export function languageName(tag, inLanguage = lang) {
  try {
    return new Intl.DisplayNames([inLanguage], { type: 'language' }).of(tag) ?? tag;
  } catch {
    return tag;
  }
}

/** Translates the marked text and attributes under `root`. */
export function translate(root) {
  for (const e of root.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const attr of ['aria-label', 'placeholder', 'title']) {
    const data = `data-i18n-${attr}`;
    for (const e of root.querySelectorAll(`[${data}]`)) e.setAttribute(attr, t(e.getAttribute(data)));
  }
}

/**
 * The page's banner: a language menu (each language named in itself) that switches the page
 * and remembers the choice.
 */
export function languagePicker() {
  const header = document.createElement('header');
  const label = document.createElement('label');
  label.className = 'language';
  const name = document.createElement('span');
  name.dataset.i18n = 'language.label';
  name.textContent = t('language.label');
  const select = document.createElement('select');
  select.id = 'language';
  for (const l of LANGUAGES) {
    const o = document.createElement('option');
    o.value = l;
    o.textContent = languageName(l, l);
    o.lang = l;
    select.append(o);
  }
  select.value = lang;
  select.onchange = async () => {
    try { localStorage.setItem(STORED, select.value); } catch { /* not remembered */ }
    await use(select.value);
  };
  label.append(name, ' ', select);
  header.append(label);
  return header;
}
