#!/usr/bin/env node
// rundirctl's entry point: run, print, exit with the code scripts test.
import { CTL_EXIT, CtlError, runCtl } from '../cli/rundirctl.js';

runCtl(process.argv.slice(2)).then(
  (r) => {
    // Nothing to say (wait's success) prints nothing, not an empty line.
    if (r.out !== '') process.stdout.write(r.out + '\n');
    process.exitCode = r.code;
  },
  (e: unknown) => {
    if (e instanceof CtlError) {
      process.stderr.write(`rundirctl: ${e.message}\n`);
      process.exitCode = e.code;
    } else {
      process.stderr.write(`rundirctl: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = CTL_EXIT.BAD_ANSWER;
    }
  },
);
