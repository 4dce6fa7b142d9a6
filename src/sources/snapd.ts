// snapd's REST API over its Unix socket: GET /v2/snaps and /v2/connections, each with a
// timeout and an answer-size limit. Failures are errors for the caller, who keeps the last
// known state; nothing here retries or decides.
import { request } from 'node:http';
import { parseConnections, parseSnaps, SnapdAnswerError, type SnapdState } from '../world/snapd.js';

export interface SnapdOptions {
  socket: string;
  timeoutMs?: number;
  maxBytes?: number;
}

export function snapdGet(o: SnapdOptions, path: string): Promise<unknown> {
  const timeoutMs = o.timeoutMs ?? 3000;
  const maxBytes = o.maxBytes ?? 8 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (e: Error) => {
      if (done) return;
      done = true;
      req.destroy();
      reject(e);
    };
    const req = request({ socketPath: o.socket, path, method: 'GET', headers: { host: 'localhost' } }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) fail(new SnapdAnswerError(`${path}: answer larger than ${maxBytes} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (res.statusCode !== 200) return reject(new SnapdAnswerError(`${path}: HTTP ${res.statusCode}`));
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          reject(new SnapdAnswerError(`${path}: not JSON`));
        }
      });
      res.on('error', (e) => fail(e));
    });
    // One deadline for the whole exchange: a snapd that trickles bytes must not hold us.
    const timer = setTimeout(() => fail(new Error(`${path}: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      fail(e);
    });
    req.end();
  });
}

/** Instances and connections, both read or neither. */
export async function readSnapd(o: SnapdOptions): Promise<SnapdState> {
  const instances = parseSnaps(await snapdGet(o, '/v2/snaps'));
  const { plugs, slots } = parseConnections(await snapdGet(o, '/v2/connections'));
  return { instances, plugs, slots };
}
