// rundird's command line: flags, config file resolution and exit codes.
import { parseArgs } from 'node:util';
import { CONFIG_ENV, DEFAULT_CONFIG_PATH, type Overrides } from '../config/config.js';

export const EXIT = { OK: 0, FAILURE: 1, USAGE: 64, ALREADY_RUNNING: 75, CONFIG: 78 } as const;

export const USAGE = `Usage: rundird [OPTIONS]

Supervises per-user runtime directories (/run/user/UID) and keeps snap private dirs in them.

Options:
  --config FILE        configuration file (default ${DEFAULT_CONFIG_PATH}, or $${CONFIG_ENV})
  --runtime-root DIR   the runtime directories' parent (default /run/user)
  --snap-root DIR      the snap mount dir (default /snap)
  --mountinfo FILE     the mount table (default /proc/self/mountinfo)
  --proc-root DIR      where processes are read from (default /proc)
  --api-socket PATH    the status API socket (default /run/rundird/api.sock)
  --log-target T       auto (journal when started by systemd, else JSON lines on stdout),
                       journal, or stdout (default auto)
  --journal-socket P   journald's native socket (default /run/systemd/journal/socket)
  --log-format F       on stdout: auto (one readable line per record on a terminal, JSON
                       lines otherwise), pretty or json (default auto)
  --no-logind          do not use the system bus (inotify and the mount table only)
  --observe-only       write nothing (no private dirs, links or rescue): follow, diagnose and
                       warn only, as a strictly confined snap on Ubuntu Core can
                       (docs/ubuntu-core.md)
  --check-config       validate the configuration, print it, and exit
  --version            print the version and exit
  --help               print this help and exit

The system bus is $DBUS_SYSTEM_BUS_ADDRESS, or unix:path=/run/dbus/system_bus_socket.
Signals: SIGHUP reloads the configuration (a bad file keeps the old one); SIGTERM stops.
Exit codes: 0 stopped cleanly, 1 failure, 64 bad command line, 75 another rundird supervises
the same runtime root (nothing was touched), 78 bad configuration.`;

export interface Cli {
  configPath: string;
  configExplicit: boolean;
  overrides: Overrides;
  checkConfig: boolean;
  noLogind: boolean;
  observeOnly: boolean;
  logTarget: 'auto' | 'journal' | 'stdout';
  logFormat: 'auto' | 'pretty' | 'json';
  journalSocket: string;
  /** --api-socket was given: failing to open it is fatal, not a warning. */
  apiSocketExplicit: boolean;
  version: boolean;
  help: boolean;
}

export class UsageError extends Error {}

export function parseCli(argv: string[], env: NodeJS.ProcessEnv): Cli {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: 'string' },
        'runtime-root': { type: 'string' },
        'snap-root': { type: 'string' },
        mountinfo: { type: 'string' },
        'proc-root': { type: 'string' },
        'api-socket': { type: 'string' },
        'log-target': { type: 'string' },
        'journal-socket': { type: 'string' },
        'log-format': { type: 'string' },
        'check-config': { type: 'boolean' },
        'no-logind': { type: 'boolean' },
        'observe-only': { type: 'boolean' },
        version: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const logTarget = values['log-target'] ?? 'auto';
  if (logTarget !== 'auto' && logTarget !== 'journal' && logTarget !== 'stdout') throw new UsageError(`--log-target: expected auto, journal or stdout, got "${logTarget}"`);
  const logFormat = values['log-format'] ?? 'auto';
  if (logFormat !== 'auto' && logFormat !== 'pretty' && logFormat !== 'json') throw new UsageError(`--log-format: expected auto, pretty or json, got "${logFormat}"`);
  const fromEnv = env[CONFIG_ENV];
  const configPath = values.config ?? (fromEnv || DEFAULT_CONFIG_PATH);
  return {
    configPath,
    configExplicit: values.config !== undefined || !!fromEnv,
    overrides: { 'runtime-root': values['runtime-root'], 'snap-root': values['snap-root'], mountinfo: values.mountinfo, 'proc-root': values['proc-root'], 'api-socket': values['api-socket'] },
    checkConfig: values['check-config'] ?? false,
    noLogind: values['no-logind'] ?? false,
    observeOnly: values['observe-only'] ?? false,
    logTarget,
    logFormat,
    journalSocket: values['journal-socket'] ?? '/run/systemd/journal/socket',
    apiSocketExplicit: values['api-socket'] !== undefined,
    version: values.version ?? false,
    help: values.help ?? false,
  };
}
