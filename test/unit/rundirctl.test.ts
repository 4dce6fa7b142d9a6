import { describe, expect, it } from 'vitest';
import { count, formatDoctor, formatTimeline, runCtl, stamp, type CtlError } from '../../src/cli/rundirctl.js';

describe('rundirctl doctor', () => {
  const rundir = (uid: number, problems: number, leftOut = 0) => ({
    uid,
    path: `/run/user/${uid}`,
    problems: Array.from({ length: problems }, (_, i) => ({ code: 'privdir-foreign-owner', name: `snap.s${i}`, instance: `s${i}`, detail: `/run/user/${uid}/snap.s${i} is owned by uid 0` })),
    problemsLeftOut: leftOut,
  });
  const doc = (rundirs: unknown[]) => ({ uid: null, mode: 'logind', warnings: [], reliants: [], rundirs, lastScan: null });

  it('says what rundird left alone, a few per rundir and a few rundirs, and where the rest is', () => {
    const out = formatDoctor(doc([rundir(1000, 1), rundir(1001, 0), rundir(1002, 7, 3), ...Array.from({ length: 25 }, (_, i) => rundir(2000 + i, 1))]));
    expect(out).toContain('! UID 1000: left alone in /run/user/1000:\n    privdir-foreign-owner: /run/user/1000/snap.s0 is owned by uid 0');
    expect(out).not.toContain('UID 1001:');
    expect(out.match(/^ {4}privdir-foreign-owner: \/run\/user\/1002\//gm)).toHaveLength(5);
    expect(out).toContain('    … and 5 more (rundirctl status --json)');
    expect(out.match(/^! UID /gm)).toHaveLength(20);
    expect(out).toContain('  … and 7 more rundirs with things left alone (rundirctl status).');
    // Nothing left alone: nothing said of it.
    expect(formatDoctor(doc([rundir(1001, 0)]))).not.toContain('left alone');
  });
});

const err = async (argv: string[]) => {
  try {
    await runCtl(argv);
  } catch (e) {
    return { code: (e as CtlError).code, message: (e as Error).message };
  }
  return null;
};

describe('rundirctl, in the shape of systemctl and loginctl', () => {

  it('a usage error is one line and a hint, never the whole help', async () => {
    for (const argv of [['frobnicate'], ['status', '--bogus'], ['timeline'], ['timeline', 'root'], ['wait', '0', '--timeout', 'soon'], ['rescue', '0'], [], ['--json=yaml', 'status']]) {
      const e = (await err(argv))!;
      expect(e.code, argv.join(' ')).toBe(64);
      expect(e.message.split('\n'), argv.join(' ')).toHaveLength(2);
      expect(e.message).toMatch(/\nTry 'rundirctl (\w+ )?--help'\.$/);
    }
    // -o json, as journalctl takes it: said plainly.
    expect((await err(['-o', 'json', 'status']))!.message).toContain('for JSON say --json');
    // A command's own hint.
    expect((await err(['wait']))!.message).toBe("wait: which UID?\nTry 'rundirctl wait --help'.");
  });

  it('takes --json, --json=short and --json=pretty; --json before a command stays a flag', async () => {
    expect((await err(['--json', 'frobnicate']))!.message).toContain('unknown command "frobnicate"');
    expect(await err(['--json=short', 'frobnicate'])).toMatchObject({ code: 64 });
    expect(await err(['--json=pretty', '--api-socket', '/nonexistent/rundird.sock', 'status'])).toMatchObject({ code: 69 });
  });

  it('has help for each command: rundirctl COMMAND --help and rundirctl help COMMAND', async () => {
    for (const c of ['status', 'timeline', 'doctor', 'wait', 'rescue']) {
      const a = await runCtl([c, '--help']);
      const b = await runCtl(['help', c]);
      expect(a.out).toMatch(new RegExp(`^Usage: rundirctl ${c}\\b`));
      expect(b.out).toBe(a.out);
    }
    expect((await runCtl(['help'])).out).toContain('Commands:');
    expect((await err(['help', 'nope']))!.code).toBe(64);
  });

  it('counts in words: 1 warning, 2 warnings', () => {
    expect([count(1, 'warning'), count(2, 'warning'), count(0, 'service'), count(1, 'more rundir', 'more rundirs')]).toEqual(['1 warning', '2 warnings', '0 services', '1 more rundir']);
  });
});

describe('rundirctl timeline', () => {
  it('shows times as journalctl does: local by default, UTC with --utc and said so', () => {
    const t = { path: '/run/user/0', timeline: [{ at: '2026-12-08T03:04:05.006Z', event: 'state-live', detail: 'x' }] };
    expect(formatTimeline(t, true)).toContain('2026-12-08 03:04:05.006 UTC');
    const local = new Date('2026-12-08T03:04:05.006Z');
    const p = (n: number) => String(n).padStart(2, '0');
    expect(formatTimeline(t)).toContain(`${local.getFullYear()}-${p(local.getMonth() + 1)}-${p(local.getDate())} ${p(local.getHours())}:${p(local.getMinutes())}:05.006`);
    expect(stamp('not a time')).toBe('not a time');
  });
});

describe('rundirctl explain', () => {
  it('prints what journalctl -x says, by MESSAGE_ID or by event name, with no daemon', async () => {
    const { EVENTS } = await import('../../src/journal/events.js');
    const byName = await runCtl(['explain', 'reliant-without-linger']);
    const byId = await runCtl(['explain', EVENTS['reliant-without-linger'].id]);
    expect(byName).toEqual(byId);
    expect(byName.code).toBe(0);
    expect(byName.out).toMatch(/^-- \S.*\n-- MESSAGE_ID=[0-9a-f]{32} \(reliant-without-linger\)\n/);
    expect(byName.out).toContain('-- Documentation: man:rundirctl(1)');
    // Every event of rundird's has its text; the list names each with its id.
    const list = await runCtl(['explain']);
    expect(list.out.split('\n')).toHaveLength(Object.keys(EVENTS).length);
    for (const [name, def] of Object.entries(EVENTS)) expect(list.out).toContain(`${def.id}  ${name}  `);
    expect((await err(['explain', 'no-such-event']))!.code).toBe(1);
    expect(JSON.parse((await runCtl(['--json', 'explain', 'daemon-started'])).out).id).toBe(EVENTS['daemon-started'].id);
  });
});
