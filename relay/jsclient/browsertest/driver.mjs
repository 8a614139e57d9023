// driver.mjs: drives Debian's chromium through playwright-core for the Go
// package browsertest. It reads one JSON request per line on stdin and
// answers one JSON line on stdout: {"id":n,"ok":true,"result":...} or
// {"id":n,"ok":false,"error":"..."}. It never downloads a browser.
//
// Requests: {"op":"newPage"} -> {"page":n}; {"op":"goto","page":n,"url":u};
// {"op":"eval","page":n,"expr":js} (awaits promises; result is JSON);
// {"op":"waitFor","page":n,"expr":js,"timeout":ms};
// {"op":"screenshot","page":n,"path":p}; {"op":"logs","page":n};
// {"op":"closePage","page":n}; {"op":"quit"}.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const executablePath = process.env.RELAY_CHROMIUM || '/usr/bin/chromium';
const profile = mkdtempSync(join(tmpdir(), 'relay-chromium-'));

const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 900, height: 640 },
});

const pages = new Map();
let nextPage = 1;

function reply(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function page(n) {
  const p = pages.get(n);
  if (!p) throw new Error(`no page ${n}`);
  return p;
}

async function handle(req) {
  switch (req.op) {
    case 'newPage': {
      const p = await context.newPage();
      const n = nextPage++;
      const logs = [];
      // A failed load's text does not say what failed; its location does.
      p.on('console', (m) => {
        const where = m.location() && m.location().url;
        logs.push(`${m.type()}: ${m.text()}` + (m.type() === 'error' && where ? ` (${where})` : ''));
      });
      p.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
      pages.set(n, { p, logs });
      return { page: n };
    }
    case 'goto': {
      const res = await page(req.page).p.goto(req.url, { waitUntil: 'load' });
      return { status: res ? res.status() : 0 };
    }
    case 'eval': {
      const v = await page(req.page).p.evaluate(req.expr);
      return v === undefined ? null : v;
    }
    case 'waitFor':
      await page(req.page).p.waitForFunction(req.expr, null, { timeout: req.timeout || 10000, polling: 50 });
      return null;
    case 'screenshot':
      await page(req.page).p.screenshot({ path: req.path, fullPage: true });
      return null;
    case 'logs':
      return page(req.page).logs;
    case 'closePage':
      await page(req.page).p.close();
      pages.delete(req.page);
      return null;
    case 'quit':
      return null;
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
let quitting = false;
async function quit() {
  if (quitting) return;
  quitting = true;
  try { await context.close(); } catch { /* already gone */ }
  rmSync(profile, { recursive: true, force: true });
  process.exit(0);
}

reply({ id: 0, ok: true, result: { ready: true, version: context.browser()?.version() ?? '' } });

for await (const line of lines) {
  if (!line.trim()) continue;
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    reply({ id: -1, ok: false, error: `bad request: ${e.message}` });
    continue;
  }
  // Requests on different pages may run concurrently; each gets its answer.
  handle(req).then(
    (result) => {
      reply({ id: req.id, ok: true, result });
      if (req.op === 'quit') quit();
    },
    (err) => reply({ id: req.id, ok: false, error: String(err && err.message || err) }),
  );
}
await quit();
