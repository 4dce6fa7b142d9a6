// The system bus as a stream of events, with what dbus-next 0.10.2 lacks: a timeout on every
// call, reconnection with back-off when the bus daemon goes away, and the owners of the names
// we follow tracked through NameOwnerChanged (its own signal routing breaks when a service
// restarts). Signals are handed on only when they come from the current owner of a followed name.
import { existsSync } from 'node:fs';
import type DbusNext from 'dbus-next';
import { Observable, Subject } from 'rxjs';

type Dbus = typeof DbusNext;
type DbusMessage = InstanceType<Dbus['Message']>;
type MessageBus = ReturnType<Dbus['sessionBus']>;

/**
 * dbus-next, loaded at the first attempt on a bus whose socket is there: with its XML parsers
 * it is a third of the bundle and 1.3 MiB of memory, which a machine without a system bus
 * (inotify mode) never needs.
 */
let dbus: Dbus | null = null;
const loadDbus = async (): Promise<Dbus> => (dbus ??= (await import('dbus-next')).default);

export interface BusSignal {
  /** The well-known name whose owner sent it. */
  from: string;
  path: string;
  iface: string;
  member: string;
  signature: string;
  body: unknown[];
}

export type BusEvent =
  | { type: 'connected'; unique: string }
  | { type: 'disconnected'; error: string; retryInMs: number }
  | { type: 'owner'; name: string; owner: string | null }
  | { type: 'signal'; signal: BusSignal };

export class CallTimeout extends Error {}

/** The connection's unique name once Hello was answered (dbus-next's types omit it). */
const uniqueName = (bus: MessageBus): string | null => (bus as unknown as { name: string | null }).name;

export interface BusOptions {
  address: string;
  /** Well-known names to follow, each with the match rules of its signals. */
  follow: Record<string, string[]>;
  callTimeoutMs?: number;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 30_000;

export function systemBusAddress(env: NodeJS.ProcessEnv): string {
  return env.DBUS_SYSTEM_BUS_ADDRESS || 'unix:path=/run/dbus/system_bus_socket';
}

export class Bus {
  private bus: MessageBus | null = null;
  private readonly events$ = new Subject<BusEvent>();
  private readonly owners = new Map<string, string | null>();
  private timer: NodeJS.Timeout | null = null;
  private backoff = BACKOFF_MIN_MS;
  private closed = false;
  private readonly timeoutMs: number;

  constructor(private readonly opts: BusOptions) {
    this.timeoutMs = opts.callTimeoutMs ?? 5000;
  }

  get events(): Observable<BusEvent> {
    return this.events$;
  }

  owner(name: string): string | null {
    return this.owners.get(name) ?? null;
  }

  get connected(): boolean {
    return this.bus !== null && uniqueName(this.bus) !== null;
  }

  start(): void {
    this.connect();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.drop();
    this.events$.complete();
  }

  /** A method call with a timeout; rejects with CallTimeout, a DBusError or a transport error. */
  async call(dest: string, path: string, iface: string, member: string, signature = '', body: unknown[] = []): Promise<unknown[]> {
    const bus = this.bus;
    if (!bus || !uniqueName(bus)) throw new Error('not connected to the bus');
    const msg = new dbus!.Message({ destination: dest, path, interface: iface, member, signature, body });
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new CallTimeout(`${dest} ${iface}.${member}: no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      const reply = (await Promise.race([bus.call(msg), timeout])) as DbusMessage | null;
      return (reply?.body as unknown[]) ?? [];
    } finally {
      clearTimeout(t);
    }
  }

  /** Reads one property through org.freedesktop.DBus.Properties.Get, unwrapping the variant. */
  async getProperty(dest: string, path: string, iface: string, prop: string): Promise<unknown> {
    const [v] = await this.call(dest, path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [iface, prop]);
    return (v as { value: unknown }).value;
  }

  async getAll(dest: string, path: string, iface: string): Promise<Record<string, unknown>> {
    const [m] = await this.call(dest, path, 'org.freedesktop.DBus.Properties', 'GetAll', 's', [iface]);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(m as Record<string, { value: unknown }>)) out[k] = v.value;
    return out;
  }

  private connect(): void {
    if (this.closed) return;
    // No socket at the address: the same error as connecting would give, and the same back-off.
    const path = /^unix:path=([^,;]+)/.exec(this.opts.address)?.[1];
    if (path !== undefined && !existsSync(path)) return this.lost(new Error(`connect ENOENT ${path}`));
    if (!dbus) {
      loadDbus().then(
        () => this.connect(),
        (e: Error) => this.lost(e),
      );
      return;
    }
    let bus: MessageBus;
    try {
      bus = dbus.sessionBus({ busAddress: this.opts.address });
    } catch (e) {
      return this.lost(e as Error);
    }
    this.bus = bus;
    const conn = (bus as unknown as { _connection: NodeJS.EventEmitter & { stream?: NodeJS.EventEmitter } })._connection;
    let gone = false;
    const onGone = (e: Error) => {
      if (gone || this.bus !== bus) return;
      gone = true;
      this.lost(e);
    };
    bus.on('error', (e: Error) => onGone(e));
    conn.on('end', () => onGone(new Error('the bus closed the connection')));
    // dbus-next forwards neither a socket's 'close' nor every 'end': watch the socket itself.
    conn.stream?.on('close', () => onGone(new Error('the bus closed the connection')));
    conn.stream?.on('end', () => onGone(new Error('the bus closed the connection')));
    bus.on('message', (m: DbusMessage) => this.onMessage(m));
    bus.on('connect', () => {
      void this.setup(bus).catch((e: Error) => onGone(e));
    });
  }

  private async setup(bus: MessageBus): Promise<void> {
    const match = (rule: string) => this.call('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'AddMatch', 's', [rule]);
    for (const name of Object.keys(this.opts.follow)) {
      await match(`type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='${name}'`);
      for (const rule of this.opts.follow[name]!) await match(rule);
    }
    this.backoff = BACKOFF_MIN_MS;
    this.events$.next({ type: 'connected', unique: uniqueName(bus)! });
    // Owners last: a signal after the match but before this read is still routed by its sender.
    for (const name of Object.keys(this.opts.follow)) {
      let owner: string | null = null;
      try {
        [owner] = (await this.call('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'GetNameOwner', 's', [name])) as [string];
      } catch {
        owner = null; // NameHasNoOwner
      }
      this.setOwner(name, owner);
    }
  }

  private setOwner(name: string, owner: string | null): void {
    if ((this.owners.get(name) ?? null) === owner && this.owners.has(name)) return;
    this.owners.set(name, owner);
    this.events$.next({ type: 'owner', name, owner });
  }

  private onMessage(m: DbusMessage): void {
    if (m.type !== dbus!.MessageType.SIGNAL) return;
    if (m.sender === 'org.freedesktop.DBus' && m.member === 'NameOwnerChanged') {
      const [name, , newOwner] = m.body as [string, string, string];
      if (name in this.opts.follow) this.setOwner(name, newOwner || null);
      return;
    }
    // One connection may own several followed names: the signal is from the one whose
    // namespace its interface is in, else from the first the sender owns.
    let from: string | null = null;
    for (const [name, owner] of this.owners) {
      if (!owner || m.sender !== owner) continue;
      if (m.interface?.startsWith(name + '.') || m.interface === name) {
        from = name;
        break;
      }
      from ??= name;
    }
    if (from) this.events$.next({ type: 'signal', signal: { from, path: m.path, iface: m.interface, member: m.member, signature: m.signature ?? '', body: m.body as unknown[] } });
  }

  private drop(): void {
    const bus = this.bus;
    this.bus = null;
    if (!bus) return;
    try {
      bus.disconnect();
    } catch {
      // already gone
    }
  }

  private lost(e: Error): void {
    this.drop();
    if (this.closed) return;
    for (const name of this.owners.keys()) this.setOwner(name, null);
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.events$.next({ type: 'disconnected', error: e.message, retryInMs: wait });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, wait);
  }
}
