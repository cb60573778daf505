/**
 * Reading a PyTorch dictionary checkpoint: time to open (zip directory + pickle), to stream the
 * decoder rows (what `atlas import` copies), to load every parameter (what the server encodes with)
 * and the process's peak resident memory. Give a real release file (OpenAI v5 8.pt) or a random one
 * of the same size: /usr/bin/python3 tools/fixtures/torch_fixtures.py --openai-size 32768 768 /tmp/8.pt
 * Usage: node --import tsx bench/torch-checkpoint.ts --file /tmp/8.pt
 */
import { statSync } from 'node:fs';
import { openSae } from '../src/engine/sae/open.js';
import { arg } from './util.js';

const file = arg('file', '/tmp/8.pt');
const ms = (t: number): string => `${(performance.now() - t).toFixed(0)} ms`;

let t = performance.now();
const src = openSae(file);
const open = ms(t);
t = performance.now();
let rows = 0;
for (const b of src.decoderRows(1024)) rows += b.rows.length / src.config.dIn;
const stream = ms(t);
t = performance.now();
src.loadParams();
const load = ms(t);
t = performance.now();
const density = src.density();
const dens = ms(t);
src.close();
const { dIn, dSae, architecture, k } = src.config;
console.log(
  `${file}: ${(statSync(file).size / 2 ** 20).toFixed(0)} MiB, ${architecture}${k ? ` k=${k}` : ''} ${dSae} × ${dIn}`,
);
console.log(
  `open ${open} | decoder rows (${rows}) ${stream} | loadParams ${load} | density (${density?.length ?? 'none'}) ` +
    `${dens}`,
);
console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
