/**
 * Response compression on /graphql: the bytes of a feature page (the web UI's feature query, all
 * dashboards) as sent with no Accept-Encoding, with gzip and with br, and the median request time of
 * each over --runs requests. Run against a server holding the demo atlas:
 *   ATLAS_COMPRESS_LOOPBACK=1 npm start   (then, in another shell; loopback clients get no compression otherwise)
 *   npx tsx bench/http-compression.ts [--url http://127.0.0.1:4000/graphql] [--index 0] [--runs 20]
 */
import { request } from 'node:http';
import { arg } from './util.js';

const url = arg('url', 'http://127.0.0.1:4000/graphql');
const index = Number(arg('index', '0'));
const runs = Number(arg('runs', '20'));

const EXAMPLE = 'tokens values maxValue maxPosition';
const FEATURE_PAGE = `query($d: ID!, $i: Int!) { feature(dictionary: $d, index: $i) {
  id index label labelSource density maxActivation meanActivation decoderNorm
  dictionary { id name dIn dSae hookPoint model { id name dictionaries { id dIn } } }
  histogram { edges counts }
  topActivations(first: 20) { ${EXAMPLE} }
  quantileExamples { band minActivation maxActivation examples { ${EXAMPLE} } }
  logits { positive { token weight } negative { token weight } }
  explanations { id text source author createdAt }
} }`;

function post(body: string, acceptEncoding: string | null): Promise<{ bytes: number; ms: number; coding: string }> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (acceptEncoding) headers['accept-encoding'] = acceptEncoding;
    const req = request(url, { method: 'POST', headers });
    req.on('response', (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () =>
        resolve({
          bytes,
          ms: performance.now() - start,
          coding: String(res.headers['content-encoding'] ?? 'identity'),
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

const dictionaries = await fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ query: '{ dictionaries { id stats { tokens } } }' }),
}).then((r) => r.json() as Promise<{ data: { dictionaries: { id: string; stats: unknown }[] } }>);
const dictionary = dictionaries.data.dictionaries.find((d) => d.stats)?.id;
if (!dictionary) throw new Error(`No built dictionary at ${url}; start the server on the demo atlas.`);
const body = JSON.stringify({ query: FEATURE_PAGE, variables: { d: dictionary, i: index } });

await post(body, null); // warm the caches and loaders' statements
console.log(`feature page of ${dictionary} #${index}, ${runs} requests each`);
for (const accept of [null, 'gzip', 'br']) {
  const times: number[] = [];
  let last = { bytes: 0, coding: '' };
  for (let i = 0; i < runs; i++) {
    const r = await post(body, accept);
    times.push(r.ms);
    last = r;
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  console.log(
    `${last.coding.padEnd(8)} ${(last.bytes / 1000).toFixed(1).padStart(7)} kB  median ${median.toFixed(1)} ms`,
  );
}
