// The Debian package: what it holds, and lintian's verdict on it.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT } from './container.js';

const has = (cmd: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

describe.skipIf(!has('dpkg-deb'))('npm run package', () => {
  const deb = execFileSync(join(PROJECT, 'scripts/package'), { encoding: 'utf8' }).trim().split('\n').pop()!;
  const list = execFileSync('dpkg-deb', ['-c', join(PROJECT, deb)], { encoding: 'utf8' });

  it('holds the app, launchers, unit, config, docs and man pages', () => {
    for (const f of ['./usr/bin/rundird', './usr/bin/rundirctl', './lib/systemd/system/rundird.service', './etc/rundird/rundird.yaml', './usr/lib/rundird/dist/bundle/rundird.mjs', './usr/lib/rundird/dist/bundle/rundird.cjs', './usr/share/man/man8/rundird.8.gz', './usr/share/man/man8/rundirctl.8.gz', './usr/share/doc/rundird/copyright', './usr/lib/systemd/catalog/rundird.catalog']) {
      expect(list).toContain(f);
    }
    expect(execFileSync('dpkg-deb', ['-f', join(PROJECT, deb), 'Depends'], { encoding: 'utf8' })).toContain('nodejs (>= 20.19)');
    expect(list).not.toContain('node_modules/node-gyp/');
    // One bundled file a program: the npm packages are inside it, their licences beside the docs.
    expect(list).not.toContain('node_modules/rxjs/');
    expect(list).toContain('./usr/share/doc/rundird/THIRD-PARTY.txt');
    expect(list).not.toContain('dist/bench');
  });

  it.skipIf(!has('lintian') && !process.env.CI)('is lintian-clean (no errors, no warnings)', () => {
    const out = execFileSync('sh', ['-c', `lintian ${join(PROJECT, deb)} 2>&1 || true`], { encoding: 'utf8', timeout: 120_000 });
    expect(out.split('\n').filter((l) => /^[EW]: /.test(l))).toEqual([]);
  });
});
