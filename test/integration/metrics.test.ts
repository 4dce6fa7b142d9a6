// Metrics in Prometheus' own format: GET /metrics on the API socket (rundirctl metrics) and a
// textfile for node_exporter's textfile collector, checked by Debian's promtool and scraped by
// a real prometheus-node-exporter.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCtl } from '../helpers/ctl.js';
import { DaemonProcess, Sandbox, hasCommand, waitFor } from '../helpers/sandbox.js';

let sb: Sandbox;
let d: DaemonProcess | null = null;
let exporter: ChildProcess | null = null;
beforeEach(() => {
  sb = new Sandbox();
  for (const s of ['alpha', 'beta', 'gamma']) sb.addSnap(s);
});
afterEach(async () => {
  exporter?.kill('SIGKILL');
  exporter = null;
  await d?.stop();
  d = null;
  sb.cleanup();
});

const NODE_EXPORTER = '/usr/bin/prometheus-node-exporter';
// In CI both come from Debian (.ci/run): missing there is a failure, not a skip.
const havePromtool = hasCommand('promtool') || !!process.env.CI;
const haveExporter = existsSync(NODE_EXPORTER) || !!process.env.CI;

const fetchText = (url: string) =>
  new Promise<string>((resolve, reject) => {
    httpGet(url, (res) => {
      let t = '';
      res.on('data', (b: Buffer) => (t += b.toString()));
      res.on('end', () => resolve(t));
    }).on('error', reject);
  });

describe('metrics', () => {
  it('rundirctl metrics and the textfile say what rundird did, in Prometheus\' text format', async () => {
    const dir = join(sb.base, 'textfile');
    mkdirSync(dir);
    const sock = join(sb.base, 'api.sock');
    writeFileSync(sb.config, `snap-removal-grace: 0\nmetrics-textfile: ${dir}\n`);
    sb.makeRundir();
    d = await DaemonProcess.start(sb, ['--api-socket', sock]);
    const file = join(dir, 'rundird.prom');
    await waitFor(() => existsSync(file) && readFileSync(file, 'utf8').includes('rundird_private_dirs_total{action="made"} 3'), 'the textfile with the three private dirs', 10_000);
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/^# TYPE rundird_private_dirs_total counter$/m);
    expect(text).toMatch(/^rundird_rundirs\{state="live"\} 1$/m);
    expect(text).toMatch(/^rundird_events_total\{event="daemon-started"\} 1$/m);
    expect(text).toMatch(/^rundird_sync_duration_seconds_count \d+$/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+$/m);
    expect(text).not.toMatch(/uid=/); // no UID labels unless asked for
    const m = await runCtl(['--api-socket', sock, 'metrics']);
    expect(m.code).toBe(0);
    expect(m.out).toMatch(/^rundird_private_dirs_total\{action="made"\} 3$/m);
    // A private dir removed by hand is made again: counted, and the textfile follows.
    rmdirSync(sb.privateDir('beta'));
    await waitFor(() => readFileSync(file, 'utf8').includes('rundird_private_dirs_total{action="remade"} 1'), 'the re-made dir counted');
  });

  it.skipIf(!havePromtool)('promtool check metrics accepts both, from the socket and the textfile (needs promtool, Debian\'s prometheus)', async () => {
    const dir = join(sb.base, 'textfile');
    mkdirSync(dir);
    const sock = join(sb.base, 'api.sock');
    writeFileSync(sb.config, `metrics-textfile: ${dir}\n`);
    sb.makeRundir();
    d = await DaemonProcess.start(sb, ['--api-socket', sock]);
    await waitFor(() => existsSync(join(dir, 'rundird.prom')), 'the textfile');
    for (const text of [readFileSync(join(dir, 'rundird.prom'), 'utf8'), (await runCtl(['--api-socket', sock, 'metrics'])).out + '\n']) {
      const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    }
  });

  it.skipIf(!haveExporter)('a real prometheus-node-exporter serves them from its textfile collector (needs prometheus-node-exporter)', async () => {
    const dir = join(sb.base, 'textfile');
    mkdirSync(dir);
    writeFileSync(sb.config, `metrics-textfile: ${dir}\n`);
    sb.makeRundir();
    d = await DaemonProcess.start(sb);
    await waitFor(() => existsSync(join(dir, 'rundird.prom')) && readFileSync(join(dir, 'rundird.prom'), 'utf8').includes('action="made"} 3'), 'the textfile');
    // Loopback only, a port of the test's own.
    const port = 20000 + (process.pid % 20000);
    exporter = spawn(NODE_EXPORTER, ['--collector.disable-defaults', '--collector.textfile', `--collector.textfile.directory=${dir}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
    let text = '';
    for (const end = Date.now() + 15_000; !text.includes('rundird_private_dirs_total') && Date.now() < end; ) {
      text = await fetchText(`http://127.0.0.1:${port}/metrics`).catch(() => '');
      if (!text) await new Promise((r) => setTimeout(r, 200));
    }
    expect(text).toMatch(/^rundird_private_dirs_total\{action="made"\} 3$/m);
    // node_exporter says it read the file without error.
    expect(text).toMatch(/^node_textfile_scrape_error 0$/m);
  });
});

describe('the example alerting rules', () => {
  it.skipIf(!havePromtool)('promtool check rules accepts them (needs promtool)', () => {
    const r = spawnSync('promtool', ['check', 'rules', join(import.meta.dirname, '../../packaging/prometheus/rundird.rules.yml')], { encoding: 'utf8' });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: 5 rules found/);
  });
});
