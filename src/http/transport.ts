/**
 * GraphQL-over-HTTP details of /graphql that Apollo leaves to the host: a POST body must be
 * `application/json` (UTF-8), anything else is 415 before it is parsed; and a response is compressed
 * with the client's preferred Accept-Encoding among br and gzip (node:zlib). Identity below
 * MIN_COMPRESS_BYTES, where the headers would outweigh the saving, and to a client on this machine that no
 * proxy forwarded, unless ATLAS_COMPRESS_LOOPBACK says otherwise: loopback bytes cross no network. Bodies up
 * to SYNC_COMPRESS_BYTES (about 2 ms of work) are compressed on the event loop: the thread-pool round trip of
 * the asynchronous form costs more than compressing them (for a 1 KB body about 0.2 ms against 0.02 ms).
 */
import { promisify } from 'node:util';
import { brotliCompress, brotliCompressSync, gzip, gzipSync, constants, type ZlibOptions } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Bodies shorter than this go uncompressed. */
export const MIN_COMPRESS_BYTES = 1024;

/**
 * Why a POST's Content-Type is refused, or null when it is `application/json` with no charset or
 * UTF-8. The spec (GraphQL over HTTP, "POST") requires application/json and suggests 415 otherwise.
 */
export function unsupportedContentType(req: IncomingMessage): string | null {
  const header = req.headers['content-type'];
  if (!header) return 'A POST to /graphql needs "Content-Type: application/json"; the request has none.';
  const [type, ...params] = header.split(';').map((s) => s.trim().toLowerCase());
  if (type !== 'application/json')
    return `A POST to /graphql must be "Content-Type: application/json", not "${header}".`;
  const charset = params
    .find((p) => p.startsWith('charset='))
    ?.slice('charset='.length)
    .replace(/"/g, '');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')
    return `The request body must be UTF-8 JSON; charset "${charset}" is not supported.`;
  return null;
}

type Coding = 'br' | 'gzip';

/**
 * The coding to use for a client's Accept-Encoding (RFC 9110 §12.5.3): the highest q-value among br
 * and gzip; `*` stands for either; q=0 refuses. gzip on a tie (fetch and browsers send "gzip, deflate, br"):
 * on a 27 KB encode response brotli quality 5 took 770 µs for a result 4% smaller than gzip level 1's in
 * 200 µs, and the server's CPU is worth more than 4% of a response on the wire.
 */
export function chooseEncoding(acceptEncoding: string | undefined): Coding | null {
  if (!acceptEncoding) return null;
  const q = new Map<string, number>();
  for (const part of acceptEncoding.split(',')) {
    const [name, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (!name) continue;
    const qParam = params.find((p) => p.startsWith('q='));
    const value = qParam ? Number(qParam.slice(2)) : 1;
    q.set(name, Number.isFinite(value) ? value : 0);
  }
  const weight = (c: Coding) => q.get(c) ?? q.get('*') ?? 0;
  const best = (['gzip', 'br'] as const).reduce((a, b) => (weight(b) > weight(a) ? b : a));
  return weight(best) > 0 ? best : null;
}

/**
 * Brotli quality 5 of 11: close to gzip's speed with a smaller result; 11 costs ~10× the time for a few %.
 * gzip level 1 of 9: on an encode response (47 KB of JSON numbers) 8% larger than the default 6 at a
 * third of its time.
 */
const brotliOptions = (b: Buffer) => ({
  params: {
    [constants.BROTLI_PARAM_QUALITY]: 5,
    [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
    [constants.BROTLI_PARAM_SIZE_HINT]: b.length,
  },
});
const GZIP_OPTIONS: ZlibOptions = { level: constants.Z_BEST_SPEED };
/** Bodies up to these sizes are compressed synchronously (measured: 120 KB take gzip 2 ms, br 7.5 ms). */
const SYNC_COMPRESS_BYTES: Record<Coding, number> = { gzip: 128 * 1024, br: 32 * 1024 };

const compressors: Record<Coding, (b: Buffer) => Buffer | Promise<Buffer>> = {
  br: (b) =>
    b.length <= SYNC_COMPRESS_BYTES.br
      ? brotliCompressSync(b, brotliOptions(b))
      : promisify(brotliCompress)(b, brotliOptions(b)),
  gzip: (b) => (b.length <= SYNC_COMPRESS_BYTES.gzip ? gzipSync(b, GZIP_OPTIONS) : promisify(gzip)(b, GZIP_OPTIONS)),
};

/**
 * Whether the request comes straight from this machine: a loopback peer, with none of the headers a reverse
 * proxy adds (a proxy on this machine relays for clients elsewhere, which want compression).
 */
export function fromThisMachine(req: IncomingMessage): boolean {
  const peer = req.socket.remoteAddress ?? '';
  const loopback = peer === '::1' || /^(::ffff:)?127\./.test(peer);
  const h = req.headers;
  return loopback && !h['x-forwarded-for'] && !h.forwarded && !h.via;
}

/**
 * Ends `res` with `body`, compressed when the client accepts br or gzip, it is large enough, and the client is
 * not on this machine (or `compressLoopback`).
 */
export async function endCompressed(
  req: IncomingMessage,
  res: ServerResponse,
  body: string,
  compressLoopback: boolean,
): Promise<void> {
  const vary = res.getHeader('vary');
  res.setHeader('vary', vary ? `${String(vary)}, accept-encoding` : 'accept-encoding');
  const raw = Buffer.from(body, 'utf8');
  const wanted = raw.length >= MIN_COMPRESS_BYTES && (compressLoopback || !fromThisMachine(req));
  const coding = wanted ? chooseEncoding(req.headers['accept-encoding']) : null;
  const out = coding ? await compressors[coding](raw) : raw;
  if (coding) res.setHeader('content-encoding', coding);
  res.setHeader('content-length', out.length);
  res.end(out);
}
