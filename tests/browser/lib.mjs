// Shared by the browser tests: Chromium with a fake microphone, and a spectrum reading of a page's analyser.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core's findings on `page` against WCAG 2.2 A and AA and its best practices (landmarks,
 * headings): each violation's rule, impact and the elements it names. Run through the devtools
 * protocol, so the page's Content-Security-Policy does not stop it.
 */
export async function axe(page) {
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'],
    });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
}

/** Headless Chromium whose microphone plays `wav`, kept on loopback. */
export function launch(wav) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Playwright mutes audio by default; the listener must hear it.
    ignoreDefaultArgs: ['--mute-audio'],
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--allow-loopback-in-peer-connection',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required',
      // The TLS test's certificate is made by the test.
      '--ignore-certificate-errors',
    ],
  });
}

/** A page of the browser, its console on stderr; anything the Content-Security-Policy blocks fails the test. */
export async function open(browser, url, label, options = {}) {
  const page = await browser.newPage(options);
  page.on('console', (m) => {
    console.error(`[${label}]`, m.text());
    if (m.text().includes('Content Security Policy')) {
      console.error(`[${label}] the page broke its Content-Security-Policy`);
      process.exitCode = 3;
    }
  });
  await page.goto(url);
  return page;
}

/**
 * Clicks the toggle button `selector` until it is pressed (aria-pressed="true": the server
 * confirmed), clicking again every 5 s, for at most `seconds`; throws if it never is.
 */
export async function press(page, selector, seconds = 20) {
  const until = Date.now() + seconds * 1000;
  const pressed = (s) => document.querySelector(s)?.getAttribute('aria-pressed') === 'true';
  for (let tries = 1; ; tries++) {
    await page.click(selector, { timeout: Math.max(1000, until - Date.now()) });
    try {
      await page.waitForFunction(pressed, selector, { timeout: Math.max(1000, Math.min(5000, until - Date.now())) });
      return;
    } catch (e) {
      if (e.name !== 'TimeoutError') throw e;
      if (Date.now() >= until) throw new Error(`${selector} not pressed after ${tries} clicks in ${seconds} s: ${e.message}`);
      console.error(`${selector} not pressed 5 s after click ${tries}, clicking again`);
    }
  }
}

/** The loudest frequency in `window.tolk.analyser` over a second, with levels at a few tones. */
export function spectrum(page) {
  return page.evaluate(async () => {
    const a = window.tolk.analyser;
    const bins = new Float32Array(a.frequencyBinCount);
    const hz = (i) => (i * a.context.sampleRate) / a.fftSize;
    const level = (f) => {
      const i = Math.round((f * a.fftSize) / a.context.sampleRate);
      return Math.max(bins[i - 1], bins[i], bins[i + 1]);
    };
    let best = { peakHz: 0, peakDb: -Infinity, levels: {} };
    for (let k = 0; k < 10; k++) {
      a.getFloatFrequencyData(bins);
      let p = 0;
      for (let i = 1; i < bins.length; i++) if (bins[i] > bins[p]) p = i;
      if (bins[p] > best.peakDb) {
        best = { peakHz: hz(p), peakDb: bins[p], levels: { 440: level(440), 880: level(880), 990: level(990), 1320: level(1320) } };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return best;
  });
}

/** Exits the process if the test hangs. */
export function deadline(seconds) {
  return setTimeout(() => {
    console.error(`browser test timed out after ${seconds} s`);
    process.exit(2);
  }, seconds * 1000);
}
