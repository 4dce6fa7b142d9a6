// The status API: read-only HTTP/1.1 on a Unix socket that only root (or one configured group)
// may open. Bounded everywhere: request time, header size, no bodies, answer size, connections.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { listenApiSocket, listenInheritedSocket } from '../effects/apiSocket.js';
export { rootApiSocket } from './paths.js';

export const API_VERSION = 'v1';
const MAX_URL = 1024;
export const MAX_RESPONSE = 4 * 1024 * 1024;

export interface ApiHandlers {
  status(): unknown;
  /** Answers when the rundir is live (and the socket accepts a connection), or at the timeout. */
  wait(uid: number, socket: string | null, timeoutMs: number, signal: AbortSignal): Promise<unknown>;
  /** Root only: asks logind to keep the UID's rundir (rundirctl rescue UID --linger). */
  linger(uid: number): Promise<unknown>;
  timeline(uid: number): unknown | null;
  warnings(): unknown;
  reliants(): unknown;
  doctor(uid: number | null): Promise<unknown>;
  /** Prometheus' text format. */
  metrics(): Promise<RawAnswer>;
}

/** An answer that is not JSON (the metrics, in Prometheus' text format). */
export class RawAnswer {
  constructor(
    readonly contentType: string,
    readonly text: string,
  ) {}
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function parseUidParam(s: string | null): number | null {
  if (s === null) return null;
  if (!/^(0|[1-9][0-9]{0,9})$/.test(s) || Number(s) > 0xfffffffe) throw new HttpError(400, `"${s}" is not a UID`);
  return Number(s);
}

/** The longest rundirctl wait, in seconds. */
export const MAX_WAIT_S = 3600;

async function route(h: ApiHandlers, req: IncomingMessage, rootOnly: boolean, signal: AbortSignal): Promise<unknown> {
  if ((req.url ?? '').length > MAX_URL) throw new HttpError(414, 'URL too long');
  if (req.headers['transfer-encoding'] || Number(req.headers['content-length'] ?? 0) > 0) throw new HttpError(413, 'no request bodies here');
  const url = new URL(req.url ?? '/', 'http://rundird');
  const p = url.pathname;
  const lm = /^\/v1\/rundirs\/([0-9]+)\/linger$/.exec(p);
  if (lm && req.method === 'POST') {
    // The one thing that changes anything: only on a socket that root alone can open.
    if (!rootOnly) throw new HttpError(403, 'only on root\'s own socket (rundirctl as root)');
    return h.linger(parseUidParam(lm[1]!)!);
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'GET only (POST /v1/rundirs/UID/linger for root)');
  const wm = /^\/v1\/rundirs\/([0-9]+)\/wait$/.exec(p);
  if (wm) {
    const uid = parseUidParam(wm[1]!)!;
    const socket = url.searchParams.get('socket');
    if (socket !== null && !/^[^/\0]{1,255}(\/[^/\0]{1,255}){0,3}$/.test(socket) || socket?.split('/').some((c) => c === '.' || c === '..')) throw new HttpError(400, `"${socket}" is not a path inside the rundir`);
    const t = Number(url.searchParams.get('timeout') ?? 90);
    if (!(t > 0 && t <= MAX_WAIT_S)) throw new HttpError(400, `timeout: seconds from 0 to ${MAX_WAIT_S}`);
    return h.wait(uid, socket, t * 1000, signal);
  }
  if (p === '/v1/status') return h.status();
  if (p === '/metrics' || p === '/v1/metrics') return h.metrics();
  if (p === '/v1/warnings') return h.warnings();
  if (p === '/v1/reliants') return h.reliants();
  if (p === '/v1/doctor') return h.doctor(parseUidParam(url.searchParams.get('uid')));
  const m = /^\/v1\/rundirs\/([^/]+)\/timeline$/.exec(p);
  if (m) {
    let raw: string;
    try {
      raw = decodeURIComponent(m[1]!);
    } catch {
      // A malformed percent-encoding is the client's mistake, not the daemon's.
      throw new HttpError(400, 'malformed percent-encoding in the URL');
    }
    const t = h.timeline(parseUidParam(raw)!);
    if (t === null) throw new HttpError(404, `nothing recorded for UID ${m[1]}`);
    return t;
  }
  throw new HttpError(404, `no such endpoint: ${p} (try /v1/status, /v1/rundirs/UID/timeline, /v1/warnings, /v1/reliants, /v1/doctor)`);
}

function send(res: ServerResponse, status: number, doc: unknown): void {
  if (doc instanceof RawAnswer) {
    res.writeHead(status, { 'content-type': doc.contentType, 'content-length': Buffer.byteLength(doc.text), 'cache-control': 'no-store' });
    return void res.end(res.req.method === 'HEAD' ? undefined : doc.text);
  }
  let body = JSON.stringify(doc);
  if (body.length > MAX_RESPONSE) {
    status = 507;
    body = JSON.stringify({ error: `answer larger than ${MAX_RESPONSE} bytes; ask for one UID` });
  }
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Headers must be complete this soon after the connection opens. */
const HEADERS_MS = 5_000;
/** The longest delay a Node timer takes (a longer one fires at once). */
const TIMEOUT_MAX = 2 ** 31 - 1;

/** Connections at once on the API socket, and on root's own (the reserve an api-group member cannot take). */
export const MAX_CONNECTIONS = 64;
export const ROOT_CONNECTIONS = 16;

/** Listens on `path` (prepared by the caller) with mode 0600, or 0660 and group `gid`. */
/** Serves the API at `path`, bound here, or on `inheritedFd`, the socket systemd made there (socket activation). */
export async function startApi(path: string, gid: number | null, h: ApiHandlers, onError: (e: Error) => void, maxConnections = MAX_CONNECTIONS, inheritedFd: number | null = null): Promise<Server> {
  // A socket only root can open (no api-group, or root's own beside it) may ask for linger.
  const rootOnly = gid === null;
  // Node's own check of those timeouts runs every connectionsCheckingInterval (30 s), connected
  // or not: a wake-up of an idle daemon for nothing. The per-connection timer below does its
  // work; a request is answered as soon as its headers are in (no body is read) and the
  // connection is then closed, so nothing else needs the check. Its longest interval it is.
  const server = createServer({ maxHeaderSize: 8192, requestTimeout: 10_000, headersTimeout: HEADERS_MS, keepAliveTimeout: 2_000, connectionsCheckingInterval: TIMEOUT_MAX }, (req, res) => {
    clearTimeout(headerTimers.get(req.socket));
    headerTimers.delete(req.socket);
    // One request per connection: a kept-alive connection would wait for its next headers
    // under Node's own checks again.
    res.shouldKeepAlive = false;
    req.resume(); // drain anything sent anyway
    const ac = new AbortController();
    res.once('close', () => ac.abort());
    route(h, req, rootOnly, ac.signal).then(
      (doc) => send(res, 200, doc),
      (e: unknown) => {
        if (e instanceof HttpError) send(res, e.status, { error: e.message });
        else {
          onError(e as Error);
          send(res, 500, { error: 'internal error; see the journal' });
        }
      },
    );
  });
  // Node checks headersTimeout only every 30 s (connectionsCheckingInterval): a client sending
  // a byte a second held a connection 14-29 s. Each connection gets its own timer instead,
  // alive only while the connection is (no wake-ups while nobody is connected).
  const headerTimers = new Map<Socket, NodeJS.Timeout>();
  server.on('connection', (sock: Socket) => {
    headerTimers.set(
      sock,
      setTimeout(() => sock.destroy(), HEADERS_MS),
    );
    sock.once('close', () => {
      clearTimeout(headerTimers.get(sock));
      headerTimers.delete(sock);
    });
  });
  server.maxConnections = maxConnections;
  server.on('clientError', (_e, sock) => sock.destroy());
  if (inheritedFd !== null) await listenInheritedSocket(server, inheritedFd, path, gid);
  else await listenApiSocket(server, path, gid);
  server.on('error', onError);
  return server;
}
