// The Debian package, for this machine's architecture and for arm64 and armhf: what it holds,
// and lintian's verdict on it.
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT } from './container.js';
import { hasCommand } from '../helpers/sandbox.js';

const has = hasCommand;

describe.skipIf(!has('dpkg-deb'))('npm run package', () => {
  // Built in beforeAll, not in the describe's body: vitest runs a skipped describe's body at collection.
  let deb = '';
  let list = '';
  const debs: Record<string, string> = {};
  beforeAll(() => {
    const built = execFileSync(join(PROJECT, 'scripts/package'), ['amd64', 'arm64', 'armhf'], { encoding: 'utf8', timeout: 300_000 }).trim().split('\n');
    for (const arch of ['amd64', 'arm64', 'armhf']) debs[arch] = built.find((l) => l.endsWith(`_${arch}.deb`))!;
    const host = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
    deb = debs[host]!;
    list = execFileSync('dpkg-deb', ['-c', join(PROJECT, deb)], { encoding: 'utf8' });
  }, 300_000);

  it('holds the app, launchers, unit, config, docs and man pages', () => {
    for (const f of ['./usr/bin/rundird', './usr/bin/rundirctl', './lib/systemd/system/rundird.service', './etc/rundird/rundird.yaml', './usr/lib/rundird/dist/bundle/rundird.mjs', './usr/lib/rundird/dist/bundle/rundird.cjs', './usr/share/man/man8/rundird.8.gz', './usr/share/man/man1/rundirctl.1.gz', './usr/share/man/man5/rundird.yaml.5.gz', './usr/share/bash-completion/completions/rundirctl', './lib/systemd/system/rundird.socket', './usr/share/doc/rundird/copyright', './usr/lib/systemd/catalog/rundird.catalog']) {
      expect(list).toContain(f);
    }
    expect(execFileSync('dpkg-deb', ['-f', join(PROJECT, deb), 'Depends'], { encoding: 'utf8' })).toContain('nodejs (>= 20.19)');
    expect(list).not.toContain('node_modules/node-gyp/');
    // One bundled file a program: the npm packages are inside it, their licences beside the docs.
    expect(list).not.toContain('node_modules/rxjs/');
    expect(list).toContain('./usr/share/doc/rundird/THIRD-PARTY.txt');
    expect(list).not.toContain('dist/bench');
    // No native addon of ours and no unix-dgram: libc's calls go through koffi's prebuilt part.
    expect(list).not.toContain('unix-dgram');
  });

  it('holds koffi with the native part of its own architecture, and only that one', () => {
    const part = { amd64: 'koffi-linux-x64/linux_x64/koffi.node', arm64: 'koffi-linux-arm64/linux_arm64/koffi.node', armhf: 'koffi-linux-arm/linux_armhf/koffi.node' };
    for (const [arch, file] of Object.entries(debs)) {
      const l = execFileSync('dpkg-deb', ['-c', join(PROJECT, file)], { encoding: 'utf8' });
      expect(execFileSync('dpkg-deb', ['-f', join(PROJECT, file), 'Architecture'], { encoding: 'utf8' }).trim()).toBe(arch);
      expect(l).toContain('./usr/lib/rundird/node_modules/koffi/index.cjs');
      expect(l.match(/koffi\.node$/gm), arch).toHaveLength(1);
      expect(l).toContain(`./usr/lib/rundird/node_modules/@koromix/${part[arch as keyof typeof part]}`);
    }
  });

  it.skipIf(!has('lintian') && !process.env.CI)('is lintian-clean for each architecture (no errors, no warnings)', () => {
    for (const file of Object.values(debs)) {
      const out = execFileSync('sh', ['-c', `lintian ${join(PROJECT, file)} 2>&1 || true`], { encoding: 'utf8', timeout: 120_000 });
      expect(out.split('\n').filter((l) => /^[EW]: /.test(l)), file).toEqual([]);
    }
  }, 300_000);
});
