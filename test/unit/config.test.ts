import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULTS, applyOverrides, configToYaml, filterFor, parseConfig, uidSelected } from '../../src/config/config.js';
import { parseCli, UsageError } from '../../src/daemon/cli.js';

const F = '/etc/rundird/rundird.yaml';

function err(text: string): ConfigError {
  try {
    parseConfig(text, F);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('an empty file gives the defaults', () => {
    expect(parseConfig('', F)).toEqual(DEFAULTS);
    expect(parseConfig('# only a comment\n', F)).toEqual(DEFAULTS);
  });

  it('reads every key', () => {
    const c = parseConfig(
      ['runtime-root: /tmp/rt', 'snap-root: /tmp/snap', 'mountinfo: /tmp/mi', 'log-level: debug', 'snap-removal-grace: 2.5', 'private-dirs:', '  uids: [0, 1000-1999]', '  include: ["*"]', '  exclude: [firefox]', '  users:', '    0:', '      include: [ubuntu-frame, "wpe-*"]'].join('\n'),
      F,
    );
    expect(c).toMatchObject({ runtimeRoot: '/tmp/rt', snapRoot: '/tmp/snap', mountinfo: '/tmp/mi', logLevel: 'debug', snapRemovalGrace: 2.5 });
    expect(c.privateDirs.uids).toEqual([{ from: 0, to: 0 }, { from: 1000, to: 1999 }]);
    expect(uidSelected(c, 1500)).toBe(true);
    expect(uidSelected(c, 2000)).toBe(false);
    const f0 = filterFor(c, 0);
    expect(f0.include.map(String)).toEqual(['/^ubuntu-frame$/', '/^wpe-[^/]*$/']);
    expect(f0.exclude.map(String)).toEqual(['/^firefox$/']);
  });

  it.each([
    ['runtime-root: relative/path', 1, 'runtime-root', 'absolute path'],
    ['log-level: loud', 1, 'log-level', 'one of'],
    ['snap-root: /snap\nbogus: 1', 2, 'bogus', 'unknown key'],
    ['private-dirs:\n  uids: [1000-10]', 2, 'private-dirs.uids[0]', 'range'],
    ['private-dirs:\n  include: firefox', 2, 'private-dirs.include', 'list'],
    ['private-dirs:\n  exclude: ["../etc"]', 2, 'private-dirs.exclude[0]', 'glob'],
    ['private-dirs:\n  users:\n    bob:\n      include: [a1]', 3, 'private-dirs.users.bob', 'not a UID'],
    ['private-dirs:\n  users:\n    0:\n      includ: [a1]', 4, 'private-dirs.users.0.includ', 'unknown key'],
    ['snap-removal-grace: -1', 1, 'snap-removal-grace', 'number'],
    ['- a\n- b', 1, '(top level)', 'mapping'],
  ])('rejects %j naming line %i and key %s', (text, line, key, words) => {
    const e = err(text);
    expect(e.file).toBe(F);
    expect(e.line).toBe(line);
    expect(e.key).toBe(key);
    expect(e.message).toContain(words);
    expect(e.message.startsWith(`${F}:${line}: key "${key}"`)).toBe(true);
  });

  it('reads rescue policies per UID and max-entries, and refuses what is not one', () => {
    const c = parseConfig('rescue:\n  0: [restore]\n  1000: [linger, restore]\nmax-entries: 100\n', F);
    expect(c.rescue).toEqual(new Map([[0, new Set(['restore'])], [1000, new Set(['linger', 'restore'])]]));
    expect(c.maxEntries).toBe(100);
    expect(() => parseConfig('rescue:\n  0: [rescue-me]\n', F)).toThrow(/rescue.0\[0\].*not a policy/);
    expect(() => parseConfig('rescue:\n  root: [linger]\n', F)).toThrow(/not a UID/);
    expect(() => parseConfig('rescue:\n  0: []\n', F)).toThrow(/list of policies/);
    expect(() => parseConfig('rescue:\n  0: [linger]\n  "0": [restore]\n', F)).toThrow(/given twice/);
    expect(() => parseConfig('max-entries: 10\n', F)).toThrow(/max-entries.*64/);
  });

  it('names the line of a YAML syntax error', () => {
    const e = err('snap-root: /snap\nprivate-dirs: [unclosed\n');
    expect(e.line).toBeGreaterThanOrEqual(2);
    expect(e.message).toContain('YAML syntax');
  });

  it('rejects duplicate keys', () => {
    expect(err('snap-root: /a\nsnap-root: /b').message).toContain('YAML syntax');
    // also where the keys are UIDs, and in one pass (the yaml library's check was quadratic)
    expect(err('private-dirs:\n  users:\n    1000: {}\n    "1000": {}\n').message).toMatch(/:4: key "private-dirs.users.1000": YAML syntax/);
  });

  it('never quotes a line of a file that is not a config (a path to a secret): only what looks like a key', () => {
    const e = err('root:$6$abcdefgh$XXXXXXXXXXXXXXXX:19000:0:99999:7:::\n');
    expect(e.message).toContain('not a config key');
    expect(e.message).not.toContain('$6$');
    expect(err('privat-dirs: 1\n').message).toContain('key "privat-dirs": unknown key');
  });

  it('bounds the lists a config may hold', () => {
    const users = Array.from({ length: 4097 }, (_, i) => `    ${i}: {}`).join('\n');
    expect(err(`private-dirs:\n  users:\n${users}\n`).message).toContain('4097 entries; at most 4096');
    expect(err(`private-dirs:\n  include: [${Array.from({ length: 257 }, () => 'a').join(', ')}]\n`).message).toContain('at most 256');
  });

  it('lets flags override the file, and checks them', () => {
    expect(applyOverrides(DEFAULTS, { 'runtime-root': '/x' }).runtimeRoot).toBe('/x');
    expect(() => applyOverrides(DEFAULTS, { 'snap-root': 'rel' })).toThrow(/snap-root.*absolute/);
  });
});

describe('command line', () => {
  it('takes the config from the flag, else the environment, else the default', () => {
    expect(parseCli(['--config', '/a'], { RUNDIRD_CONFIG: '/b' })).toMatchObject({ configPath: '/a', configExplicit: true });
    expect(parseCli([], { RUNDIRD_CONFIG: '/b' })).toMatchObject({ configPath: '/b', configExplicit: true });
    expect(parseCli([], {})).toMatchObject({ configPath: F, configExplicit: false });
  });
  it('rejects unknown flags', () => {
    expect(() => parseCli(['--frobnicate'], {})).toThrow(UsageError);
  });
});

describe('diagnosis and API keys', () => {
  it('reads proc-root, api-socket and api-group, and names the line of a bad one', () => {
    const c = parseConfig('proc-root: /tmp/proc\napi-socket: /tmp/a.sock\napi-group: 4242\n', F);
    expect(c).toMatchObject({ procRoot: '/tmp/proc', apiSocket: '/tmp/a.sock', apiGroup: '4242' });
    expect(parseConfig('api-group: rundird\n', F).apiGroup).toBe('rundird');
    expect(err('log-level: info\napi-socket: relative.sock\n').message).toBe(`${F}:2: key "api-socket": expected an absolute path, got "relative.sock"`);
    expect(err('api-group: "a b"\n').message).toContain('"a b" is not a group name or GID');
    expect(err('proc-root: [x]\n').message).toContain('key "proc-root"');
  });

  it('takes --proc-root, --api-socket and --log-target on the command line', () => {
    const cli = parseCli(['--proc-root', '/p', '--api-socket', '/a.sock', '--log-target', 'journal', '--journal-socket', '/j'], {});
    expect(cli.overrides).toMatchObject({ 'proc-root': '/p', 'api-socket': '/a.sock' });
    expect(cli).toMatchObject({ logTarget: 'journal', journalSocket: '/j', apiSocketExplicit: true });
    expect(applyOverrides(DEFAULTS, cli.overrides)).toMatchObject({ procRoot: '/p', apiSocket: '/a.sock' });
    expect(() => parseCli(['--log-target', 'syslog'], {})).toThrow(UsageError);
    expect(parseCli([], {})).toMatchObject({ logTarget: 'auto', apiSocketExplicit: false });
  });
});

describe('the configuration in force, printed', () => {
  it('reads back as the same configuration: the defaults, and one that sets every key', () => {
    expect(parseConfig(configToYaml(DEFAULTS), 'printed')).toEqual(DEFAULTS);
    const text = [
      'runtime-root: /srv/run/user',
      'api-group: rundird',
      'log-level: debug',
      'snap-removal-grace: 5',
      'max-entries: 512',
      'rescue:',
      '  0: [linger, restore]',
      'private-dirs:',
      '  uids: [0, 1000-59999]',
      '  include: ["*"]',
      '  exclude: [firefox]',
      '  users:',
      '    0:',
      '      include: [ubuntu-frame, "*_kiosk"]',
      'links:',
      '  - name: kiosk-socket',
      '    source: kiosk.sock',
      '    target: "snap.{instance}/kiosk.sock"',
      '    instances: [wpe-webkit-mir-kiosk]',
      '  - name: wayland',
      '    source: "wayland-*"',
      '    target: "snap.{instance}/{name}"',
      '    on-exdev: symlink',
      '    plugs: [wayland]',
    ].join('\n');
    const cfg = parseConfig(text, 'every key');
    expect(parseConfig(configToYaml(cfg), 'printed')).toEqual(cfg);
    expect(configToYaml(cfg)).toContain("  uids:\n    - \"0\"\n    - 1000-59999\n");
  });
});
