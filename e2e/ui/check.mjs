// Drives the Nomad web UI in Debian's Chromium and checks, on screen, what
// an operator sees of a beam allocation. e2e/ui_test.go runs it against the
// real agents; it reads its inputs from the environment:
//
//   NOMAD_ADDR, NOMAD_TOKEN   the agent and an ACL token
//   JOB, GROUP, TASK, ALLOC   what to look at
//   OUT                       where screenshots and page texts go
//   PHASE                     a name for this run's files (start, upgraded)
//   EVENTS                    |-separated texts the task events must show
//   LOG                       a text the task's stdout must show
//   EXEC_FILE                 with it, run a command through the UI's exec
//                             terminal that writes this file (local/NAME)
//
// It prints one JSON line per check and exits 1 if any failed.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const env = process.env;
const addr = env.NOMAD_ADDR.replace(/\/$/, '');
const out = env.OUT;
const phase = env.PHASE || 'ui';
const timeout = 30_000;
fs.mkdirSync(out, { recursive: true });

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'beam-ui-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1440, height: 1000 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
// The UI keeps the ACL token in local storage.
await context.addInitScript((token) => { window.localStorage.nomadTokenSecret = token; }, env.NOMAD_TOKEN);
const page = context.pages()[0] || await context.newPage();

let failed = 0;
async function check(name, fn) {
  const started = Date.now();
  try {
    const detail = await fn();
    console.log(JSON.stringify({ check: name, ok: true, detail, ms: Date.now() - started }));
  } catch (e) {
    failed++;
    console.log(JSON.stringify({ check: name, ok: false, error: String(e && e.message || e).slice(0, 2000) }));
  }
  await page.screenshot({ path: path.join(out, `${phase}-${name}.png`) }).catch(() => {});
  const text = await page.evaluate(() => document.body.innerText).catch(() => '');
  fs.writeFileSync(path.join(out, `${phase}-${name}.txt`), text);
}

// The UI's production build strips data-test-* attributes, so elements
// are found by their classes and by what they say.
const eventCells = () => page.locator('.boxed-section', { hasText: 'Recent Events' }).locator('tbody tr td:nth-child(3)');

// waitText waits until the page (or the elements loc() finds) shows text
// matching re; the UI long-polls, so the load event means nothing.
async function waitText(re, loc = () => page.locator('body')) {
  const deadline = Date.now() + timeout;
  let last = '';
  while (Date.now() < deadline) {
    last = (await loc().allInnerTexts().catch(() => [])).join('\n');
    const m = last.match(re);
    if (m) return m;
    await page.waitForTimeout(250);
  }
  throw new Error(`no ${re} after ${timeout / 1000}s; it shows:\n${last.slice(0, 1500)}`);
}

const job = `${env.JOB}@default`;
const alloc = env.ALLOC;
const task = env.TASK;

await check('job', async () => {
  await page.goto(`${addr}/ui/jobs/${encodeURIComponent(job)}`);
  await waitText(/JOB DETAILS/i);
  const m = await waitText(/(\d+)\/(\d+) Allocations? Running/i);
  if (m[1] !== m[2] || m[1] === '0') throw new Error(`the job page shows ${m[0]}`);
  const status = await waitText(/Status:\s*Healthy/);
  const deploy = await waitText(/(\d+)\/(\d+) Healthy/);
  return { running: m[0], status: status[0].replace(/\s+/g, ' '), healthy: deploy[0] };
});

await check('allocation', async () => {
  await page.goto(`${addr}/ui/allocations/${alloc}`);
  const tasks = () => page.locator('.boxed-section', { hasText: 'Tasks' }).locator('tbody tr');
  await waitText(new RegExp(`${task}\\s+running`), tasks);
  // Resource utilisation: the task's stats reach the UI when both
  // figures are above zero.
  const usage = {};
  for (const metric of ['CPU', 'Memory']) {
    const box = page.locator('.primary-metric', { hasText: metric }).first();
    const deadline = Date.now() + timeout;
    let text = '';
    while (Date.now() < deadline) {
      text = (await box.locator('.annotation strong').innerText().catch(() => '')).trim();
      if (/[1-9]/.test(text)) break;
      await page.waitForTimeout(500);
    }
    if (!/[1-9]/.test(text)) throw new Error(`${metric} shows ${JSON.stringify(text)}, not a figure above zero`);
    usage[metric] = text;
  }
  return usage;
});

await check('task', async () => {
  await page.goto(`${addr}/ui/allocations/${alloc}/${task}`);
  await waitText(/Recent Events/i);
  const shown = [];
  for (const want of (env.EVENTS || '').split('|').filter(Boolean)) {
    const m = await waitText(new RegExp(want.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), eventCells);
    shown.push(m[0]);
  }
  const events = await eventCells().allInnerTexts();
  const repeats = events.filter((e, i) => e && events.indexOf(e) !== i && !/Template|Restart/.test(e));
  if (repeats.length) throw new Error(`events repeat: ${JSON.stringify(repeats)}`);
  return { events };
});

await check('logs', async () => {
  await page.goto(`${addr}/ui/allocations/${alloc}/${task}/logs`);
  const m = await waitText(new RegExp(env.LOG.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), () => page.locator('.cli-window'));
  return { line: m[0] };
});

if (env.EXEC_FILE) {
  await check('exec', async () => {
    // The allocation page's Exec button opens the exec window; open it
    // here directly, on the task, as the button's menu does.
    await page.goto(`${addr}/ui/exec/${encodeURIComponent(env.JOB)}/${encodeURIComponent(env.GROUP)}/${encodeURIComponent(task)}?allocation=${alloc.slice(0, 8)}&namespace=default`);
    const frames = [];
    page.on('websocket', (ws) => {
      frames.push(`open ${ws.url().replace(/token=[^&]*/, 'token=…')}`);
      ws.on('framereceived', (f) => frames.push(`< ${String(f.payload).slice(0, 200)}`));
      ws.on('framesent', (f) => frames.push(`> ${String(f.payload).slice(0, 200)}`));
      ws.on('close', () => frames.push('closed'));
    });
    const term = page.locator('.xterm-helper-textarea');
    await term.waitFor({ timeout });
    await page.waitForTimeout(1000); // the command line is drawn after the socket's setup
    await term.focus();
    // Run the command the terminal offers (a shell), as an operator
    // would, and type into it.
    await page.keyboard.press('Enter');
    await page.waitForTimeout(1500);
    // Exec runs in the release's root; NOMAD_TASK_DIR is the task's local/.
    await page.keyboard.type(`echo exec-through-the-ui > "$NOMAD_TASK_DIR/${path.basename(env.EXEC_FILE)}"`);
    await page.keyboard.press('Enter');
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
      const res = await fetch(`${addr}/v1/client/fs/cat/${alloc}?path=${encodeURIComponent(task + '/' + env.EXEC_FILE)}`,
        { headers: { 'X-Nomad-Token': env.NOMAD_TOKEN } });
      if (res.ok && (await res.text()).includes('exec-through-the-ui')) return { file: env.EXEC_FILE };
      await page.waitForTimeout(500);
    }
    throw new Error(`the command typed into the UI's terminal did not write ${env.EXEC_FILE}; websocket: ${frames.join(' | ').slice(0, 1500)}`);
  });
}

await context.close();
fs.rmSync(profile, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
