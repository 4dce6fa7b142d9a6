// A fake snapd: real HTTP on a real Unix socket, answering GET /v2/snaps and /v2/connections
// from a state the test sets, and misbehaving on request (slow, garbage, huge, down).
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';

export type Mode = 'ok' | 'slow' | 'garbage' | 'error' | 'huge';

export class FakeSnapd {
  readonly socket: string;
  readonly stateFile: string;
  mode: Mode = 'ok';
  snaps: string[] = [];
  /** Installed but inactive (snapd's status "installed"): being removed or refreshed, or disabled. */
  inactive = new Set<string>();
  /** [plug snap, plug, slot snap, slot, interface] */
  connections: [string, string, string, string, string][] = [];
  requests = 0;
  private server: Server | null = null;

  constructor(dir: string) {
    this.socket = join(dir, 'snapd.socket');
    mkdirSync(join(dir, 'snapd-state'), { recursive: true });
    this.stateFile = join(dir, 'snapd-state', 'state.json');
    writeFileSync(this.stateFile, '{}');
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.requests++;
      const send = (body: unknown) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (this.mode === 'slow') return void setTimeout(() => send({ type: 'sync', result: [] }), 10_000).unref();
      if (this.mode === 'garbage') return void res.end('<html>not json');
      if (this.mode === 'error') {
        res.writeHead(500);
        return void res.end('{"type":"error"}');
      }
      if (this.mode === 'huge') {
        res.writeHead(200);
        return void res.end('['.repeat(9 * 1024 * 1024));
      }
      if (req.url === '/v2/snaps') return send({ type: 'sync', status_code: 200, result: this.snaps.map((name) => ({ name, status: this.inactive.has(name) ? 'installed' : 'active' })) });
      if (req.url === '/v2/connections') {
        return send({
          type: 'sync',
          status_code: 200,
          result: { established: this.connections.map(([ps, p, ss, s, i]) => ({ plug: { snap: ps, plug: p }, slot: { snap: ss, slot: s }, interface: i, manual: false })), plugs: [], slots: [] },
        });
      }
      res.writeHead(404);
      res.end('{}');
    });
    await new Promise<void>((r) => this.server!.listen(this.socket, r));
  }

  /** What snapd does on every change: rewrite its state file (rundird watches it). */
  touch(): void {
    writeFileSync(this.stateFile + '~', String(Date.now()));
    writeFileSync(this.stateFile, String(Date.now()));
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) await new Promise((r) => s.close(r).closeAllConnections());
  }
}

/**
 * A started double with one snap, `kiosk`, installed on the sandbox and in snapd, with the
 * given plugs connected, and the sandbox's config pointing the daemon at it.
 */
export async function kioskSnapd(sb: { base: string; config: string; addSnap(i: string): void }, plugs: string[] = ['wayland']): Promise<FakeSnapd> {
  const snapd = new FakeSnapd(sb.base);
  await snapd.start();
  sb.addSnap('kiosk');
  snapd.snaps = ['kiosk'];
  snapd.connections = plugs.map((p) => ['kiosk', p, 'snapd', p, p]);
  writeFileSync(sb.config, `snap-removal-grace: 0\nsnapd-socket: ${snapd.socket}\nsnapd-state: ${snapd.stateFile}\n`);
  return snapd;
}
