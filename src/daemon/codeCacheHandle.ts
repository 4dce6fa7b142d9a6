// What the loader (bin/rundird-loader.ts) tells the daemon about its code cache: how it went,
// for the daemon-started record, and how to save one once the first pass is done.

export const CODE_CACHE = Symbol.for('rundird.codeCache');

export interface CodeCacheHandle {
  /**
   * off: no cache directory (not run by systemd with CacheDirectory=); absent: none yet;
   * used: compiled from it; rejected: V8 refused it (another Node, other flags); refused: not
   * a file only root could have written, left alone and never written through.
   */
  state: 'off' | 'absent' | 'used' | 'rejected' | 'refused';
  why: string | undefined;
  /** The cache file, when there is a cache directory. */
  file: string | null;
  /** Writes the cache of what has been compiled so far. Throws on failure. */
  save(): void;
}

/** The loader's handle; null when the daemon was not started through it (tests on dist/src). */
export function codeCacheHandle(): CodeCacheHandle | null {
  return ((globalThis as Record<symbol, unknown>)[CODE_CACHE] as CodeCacheHandle | undefined) ?? null;
}
