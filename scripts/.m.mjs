import { build } from 'esbuild';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
const require = createRequire('/work/main/package.json');
const root='/work/main';
const [min, out, stubs] = process.argv.slice(2);
const stubList = (stubs ?? '').split(',').filter(Boolean);
const ESM_BUILD = { rxjs: 'dist/esm/index.js', yaml: 'browser/index.js' };
const esmBuilds = { name: 'esm-builds', setup(b) {
  b.onResolve({ filter: /^(rxjs|yaml)$/ }, (args) => ({ path: join(dirname(require.resolve(`${args.path}/package.json`, { paths: [root] })), ESM_BUILD[args.path]) }));
  for (const s of stubList) b.onResolve({ filter: new RegExp(s) }, (args) => ({ path: args.path, namespace: 'stub' }));
  b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'module.exports = {}', loader: 'js' }));
} };
const r = await build({ absWorkingDir: root, entryPoints: ['src/bin/rundird.ts'], outdir: out, outExtension: { '.js': '.mjs' }, bundle: true, platform: 'node', target: 'node20', format: 'esm', external: ['unix-dgram','usocket','x11'], plugins:[esmBuilds], legalComments:'none', metafile:true, logLevel:'warning', minifyWhitespace: min==='min', minifySyntax: min==='min', banner: { js: "import { createRequire as __rundirdRequire } from 'node:module'; const require = __rundirdRequire(import.meta.url);" } });
console.log(Object.values(r.metafile.outputs)[0].bytes);
