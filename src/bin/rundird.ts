// The daemon's main: parse, load config, start, and turn signals into reload and stop. Bundled
// as dist/bundle/rundird.cjs, which the executable (bin/rundird-loader.ts) compiles and runs.
import { existsSync, lstatSync, realpathSync } from 'node:fs';
import type { Server } from 'node:http';
import { handlersFor } from '../api/handlers.js';
import { ROOT_CONNECTIONS, rootApiSocket, startApi } from '../api/server.js';
import { ApiSocketError, prepareApiSocket, removeApiSocket } from '../effects/apiSocket.js';
import { journaldDestination } from '../journal/journald.js';
import { ensureRuntimeRoot, lockRuntimeRoot } from '../effects/root.js';
import { prettyDestination } from '../journal/pretty.js';
import { LIBC_CALLS } from '../sys/libc.js';
import { groupId } from '../world/passwd.js';
import { ConfigError, configToYaml, loadConfig, type Config } from '../config/config.js';
import { Daemon } from '../daemon/daemon.js';
import { EXIT, USAGE, UsageError, parseCli, type Cli } from '../daemon/cli.js';
import { createLogger, logEvent, type Log } from '../journal/logger.js';
import { codeCacheHandle } from '../daemon/codeCacheHandle.js';
import { createNotifier } from '../daemon/notify.js';
import { takeListenFds } from '../daemon/listenFds.js';
import { systemBusAddress } from '../sources/dbus/bus.js';
import { VERSION } from '../version.js';

function fatal(msg: string, code: number): never {
  process.stderr.write(`rundird: ${msg}\n`);
  process.exit(code);
}

function load(cli: Cli): Config {
  const cfg = loadConfig(cli.configPath, cli.configExplicit, cli.overrides);
  if (cli.observeOnly) {
    // Nothing is written: no UID gets private dirs, no link rule, no rescue (docs/ubuntu-core.md).
    cfg.privateDirs.uids = [];
    cfg.links = [];
    cfg.rescue = new Map();
    cfg.observeOnly = true;
  }
  // Paths are compared with the mount table's, which has no symlinks in it.
  try {
    cfg.runtimeRoot = realpathSync(cfg.runtimeRoot);
  } catch {
    // made at start if absent
  }
  return cfg;
}

async function main(): Promise<void> {
  let cli: Cli;
  try {
    cli = parseCli(process.argv.slice(2), process.env);
  } catch (e) {
    if (e instanceof UsageError) fatal(`${e.message}\n\n${USAGE}`, EXIT.USAGE);
    throw e;
  }
  if (cli.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (cli.version) {
    process.stdout.write(`rundird ${VERSION}\nlibc calls: ${LIBC_CALLS}\njournal: native protocol (datagrams; a sealed memfd for a record larger than one) to ${cli.journalSocket} under systemd, else JSON lines on stdout\n`);
    return;
  }
  let cfg: Config;
  try {
    cfg = load(cli);
  } catch (e) {
    if (e instanceof ConfigError) fatal(`bad configuration: ${e.message}`, EXIT.CONFIG);
    throw e;
  }
  if (cli.checkConfig) {
    // Which file was read (or that none was), then the configuration in force in the file's own
    // syntax and key names, flags included: it can be pasted back.
    const read = existsSync(cli.configPath) ? `${cli.configPath}: OK` : `${cli.configPath}: not there; the defaults apply`;
    process.stdout.write(`# ${read}\n# the configuration in force (command-line flags included):\n${configToYaml(cfg)}`);
    return;
  }

  // One rundird a runtime root, decided before anything is read or written.
  try {
    ensureRuntimeRoot(cfg.runtimeRoot);
    const lock = lockRuntimeRoot(cfg.runtimeRoot, cfg.procRoot);
    if (!lock.held) {
      fatal(`another rundird ${lock.pid === null ? '(its PID could not be read from /proc/locks)' : `(PID ${lock.pid})`} supervises ${cfg.runtimeRoot} already; this one exits and touches nothing`, EXIT.ALREADY_RUNNING);
    }
  } catch (e) {
    fatal(`cannot lock the runtime root ${cfg.runtimeRoot}: ${(e as Error).message}`, EXIT.FAILURE);
  }

  // Journald's native protocol when systemd runs us (JOURNAL_STREAM) or when asked; JSON lines otherwise.
  const target = cli.logTarget === 'auto' ? (process.env.JOURNAL_STREAM && existsSync(cli.journalSocket) ? 'journal' : 'stdout') : cli.logTarget;
  if (target === 'journal' && !existsSync(cli.journalSocket)) fatal(`--log-target journal: ${cli.journalSocket} does not exist (is systemd-journald running?)`, EXIT.FAILURE);
  const journal = target === 'journal' ? journaldDestination(cli.journalSocket) : null;
  // On a terminal, one readable line per record; JSON lines when piped (or asked for).
  const pretty = !journal && (cli.logFormat === 'pretty' || (cli.logFormat === 'auto' && process.stdout.isTTY === true));
  const log = journal ? createLogger(cfg.logLevel, journal) : pretty ? createLogger(cfg.logLevel, prettyDestination(process.stdout, process.stdout.isTTY === true && !process.env.NO_COLOR)) : createLogger(cfg.logLevel);
  const notifier = createNotifier(process.env, (e) => log.warn({ err: e.message }, `sd_notify: ${e.message}`));
  let lastStatus = '';
  const daemon: Daemon = new Daemon(cfg, {
    log,
    busAddress: cli.noLogind ? null : systemBusAddress(process.env),
    onIdle: () => {
      if (!notifier) return;
      const s = daemon.summary();
      if (s !== lastStatus) notifier.send({ STATUS: s });
      lastStatus = s;
    },
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logEvent(log, 'daemon-stopping', { signal }, `stopping on ${signal}`);
    notifier?.send({ STOPPING: '1', STATUS: `stopping on ${signal}` });
    if (api) {
      api.close();
      removeApiSocket(cfg.apiSocket, apiIno);
    }
    if (rootApi) {
      rootApi.close();
      removeApiSocket(rootApiSocket(cfg.apiSocket), rootApiIno);
    }
    await daemon.stop();
    notifier?.close();
    log.flush();
    // Give the asynchronous log destination its last write.
    setImmediate(() => process.exit(EXIT.OK));
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    notifier?.send({ RELOADING: '1' });
    try {
      const next = load(cli);
      daemon.reload(next);
      log.level = next.logLevel;
      logEvent(log, 'config-reloaded', { config: cli.configPath }, `configuration reloaded from ${cli.configPath}`);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      logEvent(log, 'config-rejected', { config: cli.configPath, error: why }, `new configuration rejected, keeping the old one: ${why}`);
    }
    notifier?.send({ READY: '1' });
  });

  try {
    await daemon.start();
  } catch (e) {
    fatal(`cannot start: ${(e as Error).message}`, EXIT.FAILURE);
  }
  let api: Server | null = null;
  let apiIno = -1;
  // Socket activation (rundird.socket): systemd made the API socket and passes it; rundird then
  // neither makes nor removes it. Without systemd, rundird makes its own.
  const inherited = takeListenFds(process.env, process.pid).byName.get('api') ?? null;
  let rootApi: Server | null = null;
  let rootApiIno = -1;
  try {
    const gid = cfg.apiGroup === null ? null : groupId(cfg.apiGroup);
    if (cfg.apiGroup !== null && gid === null) throw new ApiSocketError(`api-group "${cfg.apiGroup}": no such group`);
    if (inherited === null) await prepareApiSocket(cfg.apiSocket);
    api = await startApi(cfg.apiSocket, gid, handlersFor(daemon), (e) => log.error({ err: e.message }, `status API: ${e.message}`), undefined, inherited);
    // systemd's socket is systemd's to remove (-1: never ours).
    apiIno = inherited === null ? lstatSync(cfg.apiSocket).ino : -1;
    if (gid !== null) {
      const rootPath = rootApiSocket(cfg.apiSocket);
      await prepareApiSocket(rootPath);
      rootApi = await startApi(rootPath, null, handlersFor(daemon), (e) => log.error({ err: e.message }, `status API: ${e.message}`), ROOT_CONNECTIONS);
      rootApiIno = lstatSync(rootPath).ino;
    }
  } catch (e) {
    const why = (e as Error).message;
    if (cli.apiSocketExplicit) fatal(`cannot open the status API socket ${cfg.apiSocket}: ${why}`, EXIT.FAILURE);
    logEvent(log, 'api-unavailable', { path: cfg.apiSocket, error: why }, `status API not available at ${cfg.apiSocket} (${why}); rundirctl cannot reach this daemon`);
  }
  // Ready only now: the first full reconcile is done.
  notifier?.send({ READY: '1', STATUS: daemon.summary(), MAINPID: String(process.pid) });
  notifier?.startWatchdog();
  const st = daemon.state();
  logEvent(
    log,
    'daemon-started',
    { version: VERSION, mode: daemon.mode, code_cache: codeCacheHandle()?.state, observe_only: cli.observeOnly || undefined, log_target: target, api_socket: api ? cfg.apiSocket : undefined, api_socket_from_systemd: inherited !== null || undefined, proc_root: cfg.procRoot, runtime_root: cfg.runtimeRoot, snap_root: cfg.snapRoot, mountinfo: cfg.mountinfo, rundirs: st.length, instances: daemon.instances().present.length },
    `rundird ${VERSION} running in ${daemon.mode} mode${cli.observeOnly ? ', observe-only (writes nothing)' : ''} (${daemon.mode === 'logind' ? 'logind and systemd over D-Bus, inotify and the mount table' : cli.noLogind ? 'inotify and the mount table; D-Bus not used (--no-logind)' : 'inotify and the mount table; no logind on the bus, switching when it appears'}): ${st.length} rundirs under ${cfg.runtimeRoot}, ${daemon.instances().present.length} snap instances`,
  );
  daemon.startDiagnosis();
  keepCodeCache(log);
  // The metrics' library, after the first pass: what came before is counted then.
  setImmediate(() => void daemon.metrics.activate());
}

/**
 * The loader's code cache: said when one was there but not to be trusted; made (or made again,
 * after V8 rejected the old one) now that the first pass has compiled what a start runs.
 */
function keepCodeCache(log: Log): void {
  const cc = codeCacheHandle();
  const file = cc?.file;
  if (!cc || !file) return;
  if (cc.state === 'refused') {
    logEvent(log, 'code-cache-unavailable', { path: file, error: cc.why }, `code cache ${file} not used, and left alone: ${cc.why}`);
    return;
  }
  if (cc.state !== 'absent' && cc.state !== 'rejected') return;
  setImmediate(() => {
    try {
      cc.save();
    } catch (e) {
      const why = (e as Error).message;
      logEvent(log, 'code-cache-unavailable', { path: file, error: why }, `code cache ${file} not kept: ${why}`);
    }
  });
}

// dbus-next rethrows a failed Hello inside a promise nobody holds: say it, do not die of it.
process.on('unhandledRejection', (e: unknown) => process.stderr.write(`rundird: unhandled rejection: ${(e as Error)?.stack ?? String(e)}\n`));

main().catch((e: unknown) => fatal(`unexpected error: ${(e as Error)?.stack ?? String(e)}`, EXIT.FAILURE));
