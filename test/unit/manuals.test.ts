// The manuals say what --help says: every flag and every command of rundird and rundirctl.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CTL_USAGE } from '../../src/cli/rundirctl.js';
import { USAGE } from '../../src/daemon/cli.js';

const man = (name: string) => readFileSync(resolve(import.meta.dirname, '../../packaging/man', name), 'utf8').replace(/\\-/g, '-').replace(/\\f[BIRP]/g, '');
const flags = (usage: string) => [...new Set(usage.match(/--[a-z][a-z-]*/g) ?? [])];

describe('manual pages', () => {
  it('rundird(8) names every flag of rundird --help', () => {
    const page = man('rundird.8');
    const missing = flags(USAGE).filter((f) => !page.includes(f));
    expect(missing).toEqual([]);
    expect(flags(USAGE).length).toBeGreaterThan(10);
  });

  it('rundirctl(1) names every flag and command of rundirctl --help, and its exit codes', () => {
    const page = man('rundirctl.1');
    expect(flags(CTL_USAGE).filter((f) => !page.includes(f))).toEqual([]);
    const commands = [...CTL_USAGE.matchAll(/^ {2}([a-z]+)\b/gm)].map((m) => m[1]!);
    expect(commands).toEqual(['status', 'timeline', 'doctor', 'wait', 'rescue', 'plot', 'metrics', 'explain']);
    for (const c of commands) expect(page, c).toMatch(new RegExp(`^\\.(B|BI|BR) ${c}\\b`, 'm'));
    for (const code of ['64', '69', '70', '77']) expect(page).toContain(code);
  });

  it('rundird.yaml(5) names every key of the configuration', async () => {
    const { configToYaml, DEFAULTS } = await import('../../src/config/config.js');
    const page = man('rundird.yaml.5');
    const keys = [...configToYaml({ ...DEFAULTS, apiGroup: 'g', rescue: new Map([[0, new Set(['linger' as const])]]) }).matchAll(/^([a-z-]+):/gm)].map((m) => m[1]!);
    expect(keys.length).toBeGreaterThan(10);
    expect(keys.filter((k) => !page.includes(`${k}:`))).toEqual([]);
  });

  it('the bash completion offers every command and flag of rundirctl', () => {
    const comp = readFileSync(resolve(import.meta.dirname, '../../packaging/completion/rundirctl'), 'utf8');
    expect(flags(CTL_USAGE).filter((f) => !comp.includes(f))).toEqual([]);
    for (const c of ['status', 'timeline', 'doctor', 'wait', 'rescue', 'plot', 'metrics', 'explain']) expect(comp).toContain(c);
  });
});
