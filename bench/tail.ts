// What ran in the daemon during the slowest trials (BENCH_TRACE=1): the daemon runs under
// --cpu-prof with a fine sampling interval; V8's profile clock and process.hrtime are both
// CLOCK_MONOTONIC, so each trial's window [t0, t1] cuts the samples that fall inside it.
// Each slow trial is told as its time by what the main thread was doing: idle (waiting in
// epoll), the garbage collector, or the function of ours (or of a library) nearest the top.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const TRACE_DIR = '/tmp/rundird-bench-trace';
export const TRACE_INTERVAL_US = 100;

export interface Window {
  t0: bigint;
  t1: bigint;
}

interface Profile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; parent?: number; children?: number[] }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The newest profile the daemon wrote (at its exit). */
export function newestProfile(): Profile | null {
  let files: string[];
  try {
    files = readdirSync(TRACE_DIR).filter((f) => f.endsWith('.cpuprofile')).sort();
  } catch {
    return null;
  }
  const f = files.at(-1);
  return f ? (JSON.parse(readFileSync(join(TRACE_DIR, f), 'utf8')) as Profile) : null;
}

/** Our code: the compiled modules, or the bundle (where libraries are inside too, by function). */
const ours = (url: string) => url.includes('/dist/src/') || url.endsWith('/dist/bundle/rundird.cjs') || url.endsWith('/dist/bundle/rundird.mjs');

/** A frame's label: ours by file (or bundle) and function; a library's by package; V8's own by name. */
function label(cf: Profile['nodes'][number]['callFrame']): string {
  const m = /\/dist\/src\/(.*)\.js$/.exec(cf.url) ?? /\/dist\/(bundle)\/rundird\.mjs$/.exec(cf.url) ?? /node_modules\/([^/]+)\//.exec(cf.url);
  if (m) return `${m[1]}:${cf.functionName || '(anonymous)'}`;
  if (cf.url.startsWith('node:')) return `${cf.url}:${cf.functionName || '(anonymous)'}`;
  return cf.functionName || cf.url || '(unknown)';
}

/** For each of the slowest trials: its time split by what the main thread ran. */
export function explainTail(p: Profile, windows: (Window & { ms: number })[], top = Number(process.env.BENCH_TRACE_TOP ?? 8)): { trial: number; ms: number; spent: Record<string, number> }[] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  for (const n of p.nodes) for (const c of n.children ?? []) byId.get(c)!.parent = n.id;
  // The deepest frame of ours on the stack, else the leaf.
  const cache = new Map<number, string>();
  const what = (id: number): string => {
    let s = cache.get(id);
    if (s !== undefined) return s;
    const leaf = byId.get(id)!;
    s = label(leaf.callFrame);
    for (let n: typeof leaf | undefined = leaf; n; n = n.parent === undefined ? undefined : byId.get(n.parent)) {
      if (ours(n.callFrame.url)) {
        s = n === leaf ? s : `${label(n.callFrame)} > ${s}`;
        break;
      }
    }
    cache.set(id, s);
    return s;
  };
  const times: number[] = [];
  let t = p.startTime;
  for (const d of p.timeDeltas) times.push((t += d));
  const slow = windows.map((w, trial) => ({ ...w, trial })).sort((a, b) => b.ms - a.ms).slice(0, Math.max(1, Math.ceil(windows.length / 50)));
  return slow.map((w) => {
    const a = Number(w.t0 / 1000n);
    const b = Number(w.t1 / 1000n);
    const spent = new Map<string, number>();
    for (let i = 0; i < times.length; i++) {
      if (times[i]! < a || times[i]! > b) continue;
      const k = what(p.samples[i]!);
      spent.set(k, (spent.get(k) ?? 0) + (p.timeDeltas[i + 1] ?? TRACE_INTERVAL_US) / 1000);
    }
    const sorted = [...spent].sort((x, y) => y[1] - x[1]).slice(0, top);
    return { trial: w.trial, ms: Number(w.ms.toFixed(2)), spent: Object.fromEntries(sorted.map(([k, v]) => [k, Number(v.toFixed(2))])) };
  });
}
