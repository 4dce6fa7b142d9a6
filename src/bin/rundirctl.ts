#!/usr/bin/env node
// rundirctl: the client. Status, timeline and doctor come with the status API.
import { VERSION } from '../version.js';

const args = process.argv.slice(2);
if (args[0] === '--version' || args[0] === 'version') {
  process.stdout.write(`rundirctl ${VERSION}\n`);
  process.exit(0);
}
process.stderr.write(`Usage: rundirctl --version\n`);
process.exit(args.length === 0 || args[0] === '--help' ? 0 : 64);
