// rundirctl as a real child process: its output and exit code, optionally as another user.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

export const CTL = resolve(import.meta.dirname, '../../dist/bundle/rundirctl.mjs');

export interface CtlRun {
  code: number | null;
  out: string;
  err: string;
}

export function runCtl(args: string[], uid?: number, gid = uid): Promise<CtlRun> {
  return new Promise((res) => {
    const c = spawn(process.execPath, [CTL, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(uid !== undefined ? { uid, gid } : {}) });
    let out = '';
    let err = '';
    c.stdout!.on('data', (b: Buffer) => (out += b));
    c.stderr!.on('data', (b: Buffer) => (err += b));
    c.on('exit', (code) => res({ code, out, err }));
  });
}
