// The story people come for, in a real browser: press Play, kill (or drain) the edge that
// serves the stream, and the video carries on from another region.
//
// Starts the local fleet with meridian-local (the debug binaries cargo test built, unless
// MERIDIAN_BIN_DIR says otherwise), drives Debian's Chromium headless with playwright-core,
// and reads the page's own log (window.meridian): positions, X-Served-By of every segment,
// stalls and errors. Prints the measured stall times.
//
// The fleet runs in a loopback block of its own (`--loopback-block auto`), so the test runs
// beside a developer's scripts/run-local; the only address it uses is the control URL from the
// launcher's `listening control` line, and the pages learn the rest from /api/config.
// Screenshots go to target/screenshots/ (MERIDIAN_SCREENSHOTS overrides it); only
// scripts/refresh-docs-images copies them into docs/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const binDir = process.env.MERIDIAN_BIN_DIR || path.join(root, 'target/debug');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshots = process.env.MERIDIAN_SCREENSHOTS || path.join(root, 'target/screenshots');
// The launcher's control URL (http://127.N.0.1:8000), from its `listening control` line.
let control;
let fleet;
let browser;

const runDir = path.join(root, 'target/meridian-browser-test');
// Every wait has a deadline; these are the ones outside playFor's own.
const FLEET_START_MS = 60_000;
const FLEET_STOP_MS = 30_000;
const CONTROL_MS = 30_000;
const TEST_MS = 180_000;

before(async () => {
  // A cold fleet every run: edges restart warm, and a store kept from an older build of the
  // demo media would serve its segments.
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(screenshots, { recursive: true });
  fleet = spawn(path.join(binDir, 'meridian-local'),
    ['--bin-dir', binDir, '--run-dir', runDir, '--edge-capacity', '64MiB', '--loopback-block', 'auto'], {
      cwd: root, stdio: ['ignore', 'pipe', 'inherit'],
    });
  // Ready when the launcher prints `listening control <url>`: it does after every child's
  // listening lines. The rest of stdout (the summary) is read and dropped.
  const lines = createInterface({ input: fleet.stdout });
  control = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the fleet did not start within ${FLEET_START_MS / 1000} s`)), FLEET_START_MS);
    lines.on('line', (line) => {
      const [word, kind, address, extra] = line.trim().split(/\s+/);
      if (word === 'listening' && kind === 'control' && address && extra === undefined) { clearTimeout(timer); resolve(address); }
    });
    fleet.once('exit', (code) => { clearTimeout(timer); reject(new Error(`meridian-local exited early (${code})`)); });
    fleet.once('error', (error) => { clearTimeout(timer); reject(new Error(`cannot start meridian-local from ${binDir}: ${error.message}`)); });
  });
  console.log(`fleet: meridian-local is up, control ${control}`);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (fleet && fleet.exitCode === null && fleet.signalCode === null) {
    fleet.kill('SIGINT');
    const stopped = await Promise.race([once(fleet, 'exit').then(() => true),
      new Promise((resolve) => setTimeout(() => resolve(false), FLEET_STOP_MS))]);
    if (!stopped) {
      fleet.kill('SIGKILL');
      throw new Error(`meridian-local did not stop within ${FLEET_STOP_MS / 1000} s of SIGINT; killed it (SIGKILL)`);
    }
  }
});

async function openPlayer(client, { protocol = 'hls', stream = 'live/big-clock' } = {}) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // hls.js and dash.js warn on the console; kept for the failure message.
  page.consoleLines = [];
  page.on('console', (m) => { if (m.type() !== 'log') page.consoleLines.push(`${m.type()}: ${m.text()}`.slice(0, 300)); });
  await page.goto(`${control}/`);
  await page.selectOption('#client', client);
  await page.selectOption('#protocol', protocol);
  await page.selectOption('#stream', stream);
  await page.click('#play');
  return page;
}

const position = (page) => page.evaluate(() => document.getElementById('video').currentTime);

/** Waits until playback has advanced `seconds` from where it is now (or fails after `limit`). */
async function playFor(page, seconds, limitMs) {
  const start = await position(page);
  const deadline = Date.now() + limitMs;
  let last = start;
  while (last - start < seconds) {
    if (Date.now() >= deadline) {
      // Say why: the player's own state and log, so a failure in CI explains itself.
      const why = await page.evaluate(() => {
        const v = document.getElementById('video');
        const ranges = [];
        for (let i = 0; i < v.buffered.length; i++) ranges.push([+v.buffered.start(i).toFixed(2), +v.buffered.end(i).toFixed(2)]);
        const m = window.meridian;
        return { currentTime: v.currentTime, paused: v.paused, readyState: v.readyState, networkState: v.networkState,
          mediaError: v.error && v.error.message, buffered: ranges, fatal: m.fatal, pathway: m.pathway,
          errors: m.errors.slice(-10), log: m.log.slice(-10), stalls: m.stalls };
      });
      why.console = page.consoleLines.slice(-15);
      assert.fail(`playback advanced only ${(last - start).toFixed(1)} s of ${seconds} s: ${JSON.stringify(why)}`);
    }
    await page.waitForTimeout(250);
    last = await position(page);
  }
  return last;
}

const snapshot = (page) => page.evaluate(() => {
  const m = window.meridian;
  const openStall = m.stallStarted === null ? 0 : Date.now() - m.stallStarted;
  return { log: m.log, stalls: m.stalls, openStall, fatal: m.fatal, errors: m.errors };
});

async function servingEdge(page) {
  const { log } = await snapshot(page);
  const last = [...log].reverse().find((e) => e.ok && e.edge && e.edge !== '?');
  assert.ok(last, 'some segment was served');
  return last;
}

async function act(edge, verb) {
  const response = await fetch(`${control}/api/edges/${edge}/${verb}`, { method: 'POST', signal: AbortSignal.timeout(CONTROL_MS) });
  assert.equal(response.status, 200, await response.text());
}

/** The fleet page once every edge shows `up` again, saved as fleet.png. */
async function screenshotFleet() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 500 } });
  await page.goto(`${control}/fleet`);
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#fleet tbody tr')];
    return rows.length === 6 && rows.every((row) => row.cells[2] && row.cells[2].textContent === 'up');
  }, null, { timeout: 15_000, polling: 250 });
  await page.screenshot({ path: path.join(screenshots, 'fleet.png') });
  await page.close();
}

test('kill -9 of the serving edge: playback carries on from another region', { timeout: TEST_MS }, async () => {
  const page = await openPlayer('192.0.2.10');
  await playFor(page, 10, 40_000);
  const victim = await servingEdge(page);
  const killing = Date.now();
  await act(victim.edge, 'kill');
  // The launcher answers once the process is gone; a segment logged before that may still have
  // come from it.
  const killedAt = Date.now();
  await playFor(page, 15, 45_000);
  const s = await snapshot(page);
  const stallMs = s.stalls.filter((x) => x.startedAt >= killing - 1000).reduce((a, x) => a + x.ms, 0) + s.openStall;
  console.log(`kill: serving edge ${victim.edge} (${victim.region}) killed; stall after the kill ${stallMs} ms`);
  if (process.env.DEBUG) console.log(JSON.stringify({ stalls: s.stalls.map((x) => ({ ...x, startedAt: x.startedAt - killedAt })), log: s.log.map((e) => ({ ...e, at: e.at - killedAt })), errors: s.errors.map((e) => ({ ...e, at: e.at - killedAt })) }, null, 1));
  assert.equal(s.fatal, null, `no fatal player error: ${JSON.stringify(s.errors)}`);
  const after = s.log.filter((e) => e.ok && e.at > killedAt);
  assert.ok(after.length >= 4, 'segments kept coming after the kill');
  assert.ok(after.every((e) => e.edge !== victim.edge), 'nothing came from the dead edge');
  // The viewer is handed over to another region, not to the dead edge's sibling: the router
  // sends a player whose edge failed out of that region, and keeps it where it landed.
  const regions = [...new Set(after.map((e) => e.region))];
  console.log(`kill: after the kill, segments came from ${[...new Set(after.map((e) => e.edge))].join(', ')} (regions ${regions.join(', ')})`);
  assert.ok(after.every((e) => e.region !== victim.region), `every segment after the kill came from another region than ${victim.region}`);
  assert.ok(stallMs <= 2000, `stall ${stallMs} ms is more than 2 s`);
  await page.screenshot({ path: path.join(screenshots, 'player.png') });
  await page.close();
  await act(victim.edge, 'restore');
  await screenshotFleet();
});

test('drain of the serving edge: no stall and no failed segment request', { timeout: TEST_MS }, async () => {
  const page = await openPlayer('198.51.100.10');
  await playFor(page, 10, 40_000);
  const drained = await servingEdge(page);
  const drainedAt = Date.now();
  await act(drained.edge, 'drain');
  await playFor(page, 15, 45_000);
  const s = await snapshot(page);
  const stallMs = s.stalls.filter((x) => x.startedAt >= drainedAt).reduce((a, x) => a + x.ms, 0) + s.openStall;
  console.log(`drain: serving edge ${drained.edge} drained; stall after the drain ${stallMs} ms`);
  if (process.env.DEBUG) console.log(JSON.stringify({ stalls: s.stalls.map((x) => ({ ...x, startedAt: x.startedAt - drainedAt })), log: s.log.map((e) => ({ ...e, at: e.at - drainedAt })), errors: s.errors.map((e) => ({ ...e, at: e.at - drainedAt })) }, null, 1));
  assert.equal(s.fatal, null);
  const after = s.log.filter((e) => e.at > drainedAt);
  assert.ok(after.every((e) => e.ok), `no failed segment request: ${JSON.stringify(after.filter((e) => !e.ok))}`);
  assert.ok(after.filter((e) => e.ok).every((e) => e.edge !== drained.edge || e.at - drainedAt < 100), 'new requests left the drained edge');
  assert.equal(stallMs, 0, `no stall after the drain: ${JSON.stringify(s.stalls)}`);
  await page.close();
  await act(drained.edge, 'undrain');
});

test('live DASH (dash.js, content steering): kill -9 of the serving edge, playback carries on from another region', { timeout: TEST_MS }, async () => {
  const page = await openPlayer('203.0.113.10', { protocol: 'dash', stream: 'live/big-clock' });
  await playFor(page, 8, 40_000);
  const victim = await servingEdge(page);
  const killing = Date.now();
  await act(victim.edge, 'kill');
  const killedAt = Date.now();
  await playFor(page, 12, 45_000);
  const s = await snapshot(page);
  const stallMs = s.stalls.filter((x) => x.startedAt >= killing - 1000).reduce((a, x) => a + x.ms, 0) + s.openStall;
  const after = s.log.filter((e) => e.ok && e.at > killedAt);
  console.log(`dash kill: serving edge ${victim.edge} (${victim.region}) killed; stall after the kill ${stallMs} ms; then ${[...new Set(after.map((e) => e.edge))].join(', ')}`);
  if (process.env.DEBUG) console.log(JSON.stringify({ stalls: s.stalls, log: s.log.map((e) => ({ ...e, at: e.at - killedAt })), errors: s.errors }, null, 1));
  assert.equal(s.fatal, null, `no fatal player error: ${JSON.stringify(s.errors)}`);
  assert.ok(after.length >= 3, 'segments kept coming after the kill');
  assert.ok(after.every((e) => e.region !== '?' && e.region !== victim.region), `every segment after the kill came from a known edge in another region than ${victim.region}`);
  assert.ok(stallMs <= 2000, `stall ${stallMs} ms is more than 2 s`);
  await page.close();
  await act(victim.edge, 'restore');
});
