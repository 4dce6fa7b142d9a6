// The runtime root is configured and trusted. systemd's tmpfiles makes /run/user; without
// logind nothing may have, so rundird makes it (0755 root, as tmpfiles would), parent first.
import { mkdirSync } from 'node:fs';

export function ensureRuntimeRoot(path: string): void {
  try {
    mkdirSync(path, { mode: 0o755 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}
