#!/usr/bin/env node
// npm run bundle: the two programs as one file each (dist/bundle/rundird.mjs, rundirctl.mjs;
// rundird.mjs is the loader of the daemon itself, rundird.cjs), what the .deb ships. Loading some 150 modules (rxjs's whole CommonJS build among them) was
// most of rundird's start-up time and a sixth of its idle memory; one file, with the ES-module
// builds of rxjs and yaml so that what is not used is left out, starts in half the time
// (docs/benchmark.md). tsc still checks the types and builds dist/src for the tests.
// Left out of the bundle: koffi (libc's calls, src/sys/libc.ts: its JavaScript finds its
// prebuilt native part beside it in node_modules at run time) and dbus-next's optional usocket
// and x11.
import { build } from 'esbuild';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const root = join(dirname(new URL(import.meta.url).pathname), '..');

/** Packages whose "node" export is CommonJS: the ES-module build instead, for tree shaking. */
const ESM_BUILD = {
  rxjs: 'dist/esm/index.js',
  yaml: 'browser/index.js',
};

const esmBuilds = {
  name: 'esm-builds',
  setup(b) {
    b.onResolve({ filter: new RegExp(`^(${Object.keys(ESM_BUILD).join('|')})$`) }, (args) => ({
      path: join(dirname(require.resolve(`${args.path}/package.json`, { paths: [root] })), ESM_BUILD[args.path]),
    }));
  },
};

const common = {
  absWorkingDir: root,
  outdir: 'dist/bundle',
  bundle: true,
  platform: 'node',
  target: 'node20',
  external: ['koffi', 'usocket', 'x11'],
  plugins: [esmBuilds],
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
};
// The executables: rundirctl, and rundird's loader (src/bin/rundird-loader.ts), ES modules.
const esm = await build({
  ...common,
  entryPoints: [{ in: 'src/bin/rundird-loader.ts', out: 'rundird' }, 'src/bin/rundirctl.ts'],
  outExtension: { '.js': '.mjs' },
  format: 'esm',
  // The CommonJS packages inside call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __rundirdRequire } from 'node:module'; const require = __rundirdRequire(import.meta.url);" },
});
// The daemon itself, as a CommonJS script: the loader compiles it with vm.Script, which takes
// V8's code cache (an ES module would need --experimental-vm-modules). The file is the whole
// function the loader calls with require, __filename and __dirname, wrapper included: the text
// read from it is then compiled as it is (Node keeps a string this large outside V8's heap),
// where wrapping it at run time made a second, 1 MiB copy on the heap. Strict as the ES
// modules were; import.meta.url is its own file's URL.
const cjs = await build({
  ...common,
  entryPoints: [{ in: 'src/bin/rundird.ts', out: 'rundird' }],
  outExtension: { '.js': '.cjs' },
  format: 'cjs',
  define: { 'import.meta.url': '__rundirdUrl' },
  banner: { js: "(function (exports, require, module, __filename, __dirname) { 'use strict'; const __rundirdUrl = require('node:url').pathToFileURL(__filename).href;" },
  footer: { js: '})' },
});
const result = { metafile: { inputs: { ...esm.metafile.inputs, ...cjs.metafile.inputs }, outputs: { ...esm.metafile.outputs, ...cjs.metafile.outputs } } };
// V8 keeps a script's source as one byte a character only if every character is Latin-1: one
// '≥' left in a comment made the whole 1 MiB of rundird.mjs two bytes a character, 1 MiB more
// of every daemon's memory. esbuild escapes what is in strings; a comment is not escaped.
for (const f of Object.keys(result.metafile.outputs).filter((o) => /\.[mc]js$/.test(o))) {
  const text = readFileSync(join(root, f), 'utf8');
  const at = text.search(/[^\x00-\xff]/);
  if (at >= 0) {
    const line = text.slice(0, at).split('\n').length;
    process.stderr.write(`bundle: ${f}:${line} has a character outside Latin-1 (${JSON.stringify(text[at])}), which doubles the memory V8 keeps its source in: write it in ASCII\n`);
    process.exit(1);
  }
}
// The packages inside, each with its version and licence text, for the .deb's documentation.
const pkgDirs = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) pkgDirs.add(m[1]);
}
const notes = [...pkgDirs].sort().map((d) => {
  const pkg = JSON.parse(readFileSync(join(root, d, 'package.json'), 'utf8'));
  const lic = [pkg.license, ...(pkg.licenses ?? [])].filter(Boolean).map((l) => (typeof l === 'string' ? l : l.type)).join(', ') || 'not stated';
  const file = readdirSync(join(root, d)).find((f) => /^(licen[cs]e|copying)/i.test(f));
  const text = file && existsSync(join(root, d, file)) ? readFileSync(join(root, d, file), 'utf8').trim() : `(no licence file in the package)`;
  return `${pkg.name} ${pkg.version} (${lic})\n\n${text}\n`;
});
writeFileSync(join(root, 'dist/bundle/THIRD-PARTY.txt'), `Packages bundled into rundird.cjs and rundirctl.mjs:\n\n${notes.join('\n' + '-'.repeat(72) + '\n\n')}`);
const sizes = Object.entries(result.metafile.outputs)
  .filter(([f]) => /\.[mc]js$/.test(f))
  .map(([f, o]) => `${f} ${(o.bytes / 1024).toFixed(0)} KiB`);
process.stdout.write(sizes.join('\n') + '\n');
