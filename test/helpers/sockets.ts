// Real Unix socket servers for link tests, owned by the rundir's user, that can stop and come
// back the ways real servers do: unlink and bind again, or bind aside and rename over.
import { existsSync, lstatSync, renameSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { GROUP, IS_ROOT, USER } from './sandbox.js';

/** A server at one path; `generation` says which incarnation answers. */
export class SocketServer {
  private server: Server | null = null;
  /** Servers replaced by a rename: still listening, reachable by nothing but stale links. */
  private readonly replaced: Server[] = [];
  generation = 0;

  constructor(readonly path: string) {}

  get up(): boolean {
    return this.server !== null;
  }

  private async listen(at: string): Promise<Server> {
    const gen = ++this.generation;
    const s = createServer((c) => c.end(`hello ${this.path} #${gen}`));
    await new Promise<void>((r, j) => {
      s.once('error', j);
      // Bound as the user, as a real server is: a socket of root's for an instant would be
      // (rightly) refused by rundird. bind() runs inside listen(), synchronously.
      if (IS_ROOT) {
        process.setegid!(GROUP);
        process.seteuid!(USER);
      }
      try {
        s.listen(at, r);
      } finally {
        if (IS_ROOT) {
          process.seteuid!(0);
          process.setegid!(0);
        }
      }
    });
    if (IS_ROOT && lstatSync(at).uid !== USER) throw new Error(`${at} was not bound as ${USER}`);
    return s;
  }

  async start(): Promise<void> {
    if (this.server) throw new Error(`${this.path} is up already`);
    this.server = await this.listen(this.path);
  }

  /** Closes the server; libuv unlinks its socket as it closes. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) await new Promise((r) => s.close(r));
    if (existsSync(this.path)) unlinkSync(this.path);
  }

  /** Binds a new socket aside and renames it over the old one: the path never disappears. */
  async renameOver(): Promise<void> {
    const aside = join(dirname(this.path), `.new-${process.pid}-${this.generation}`);
    const s = await this.listen(aside);
    renameSync(aside, this.path);
    if (this.server) this.replaced.push(this.server);
    this.server = s;
  }

  async close(): Promise<void> {
    for (const s of [...this.replaced.splice(0), ...(this.server ? [this.server] : [])]) await new Promise((r) => s.close(r));
    this.server = null;
  }

  /** What answers at this server's own path now ("hello PATH #N"). */
  expected(): string {
    return `hello ${this.path} #${this.generation}`;
  }
}

export function talk(path: string): Promise<string> {
  return new Promise((res, rej) => {
    let got = '';
    const c = connect(path);
    c.on('data', (b) => (got += b));
    c.on('end', () => res(got));
    c.on('error', rej);
  });
}
