/**
 * Rows for `COPY … FROM STDIN WITH (FORMAT binary)`, which PostgreSQL and PGlite both accept: no
 * decimal formatting or escaping on our side, no float parsing on the server's.
 *
 * Format (PostgreSQL docs, "COPY: Binary Format"): the 11-byte signature `PGCOPY\n\377\r\n\0`, a
 * 32-bit flags word and a 32-bit header-extension length (both 0); then per tuple a 16-bit field
 * count and per field a 32-bit byte length (-1 for NULL) followed by the type's binary send format,
 * all big-endian; then the 16-bit trailer -1. Send formats used here: text and jsonb (UTF-8; jsonb
 * preceded by the version byte 1), int4, float4, one-dimensional int4[]/float4[] (ndim, has-null
 * flag, element type oid, length, lower bound 1, then each element with its own length), and
 * pgvector's vector (16-bit dim, 16-bit unused, float4 elements).
 */

/** The signature, then the flags word and the extension length, both 0. */
export const COPY_HEADER = Uint8Array.from([
  0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
]);
export const COPY_TRAILER = Uint8Array.from([0xff, 0xff]);

const INT4_OID = 23;
const FLOAT4_OID = 700;
const encoder = new TextEncoder();

/** Appends tuples to a growing buffer; `take` hands over what is written so far. */
export class BinaryRows {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  constructor(initialBytes = 1 << 20) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  get size(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Starts a tuple of `fields` fields. */
  row(fields: number): this {
    this.ensure(2);
    this.view.setInt16(this.pos, fields);
    this.pos += 2;
    return this;
  }

  private nullField(): this {
    this.ensure(4);
    this.view.setInt32(this.pos, -1);
    this.pos += 4;
    return this;
  }

  /** UTF-8 straight into the buffer (at most 3 bytes per UTF-16 unit), after an optional prefix byte. */
  private utf8(prefix: number | null, s: string): this {
    const extra = prefix === null ? 0 : 1;
    this.ensure(4 + extra + 3 * s.length);
    const start = this.pos;
    this.pos += 4;
    if (prefix !== null) this.buf[this.pos++] = prefix;
    this.pos += encoder.encodeInto(s, this.buf.subarray(this.pos)).written;
    this.view.setInt32(start, this.pos - start - 4);
    return this;
  }

  text(s: string | null): this {
    return s === null ? this.nullField() : this.utf8(null, s);
  }

  /** jsonb's send format: version 1, then the JSON text. */
  jsonb(value: unknown): this {
    return value === null ? this.nullField() : this.utf8(1, JSON.stringify(value));
  }

  int4(v: number | null): this {
    if (v === null) return this.nullField();
    this.ensure(8);
    this.view.setInt32(this.pos, 4);
    this.view.setInt32(this.pos + 4, v);
    this.pos += 8;
    return this;
  }

  float4(v: number | null): this {
    if (v === null) return this.nullField();
    this.ensure(8);
    this.view.setInt32(this.pos, 4);
    this.view.setFloat32(this.pos + 4, v);
    this.pos += 8;
    return this;
  }

  private array(oid: number, values: ArrayLike<number>, float: boolean): this {
    const n = values.length;
    this.ensure(4 + 20 + 8 * n);
    const v = this.view;
    let p = this.pos;
    v.setInt32(p, 20 + 8 * n);
    v.setInt32(p + 4, 1); // dimensions
    v.setInt32(p + 8, 0); // no NULL elements
    v.setInt32(p + 12, oid);
    v.setInt32(p + 16, n);
    v.setInt32(p + 20, 1); // lower bound
    p += 24;
    for (let i = 0; i < n; i++, p += 8) {
      v.setInt32(p, 4);
      if (float) v.setFloat32(p + 4, values[i]);
      else v.setInt32(p + 4, values[i]);
    }
    this.pos = p;
    return this;
  }

  int4Array(values: ArrayLike<number> | null): this {
    return values === null ? this.nullField() : this.array(INT4_OID, values, false);
  }

  float4Array(values: ArrayLike<number> | null): this {
    return values === null ? this.nullField() : this.array(FLOAT4_OID, values, true);
  }

  /** pgvector `vector`: dim, an unused 16-bit word, then the components. */
  vector(values: Float32Array): this {
    const n = values.length;
    this.ensure(8 + 4 * n);
    const v = this.view;
    let p = this.pos;
    v.setInt32(p, 4 + 4 * n);
    v.setInt16(p + 4, n);
    v.setInt16(p + 6, 0);
    p += 8;
    for (let i = 0; i < n; i++, p += 4) v.setFloat32(p, values[i]);
    this.pos = p;
    return this;
  }

  /** The bytes written since the last take (a copy), and a fresh start. */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }
}

/** Bytes handed to COPY at a time: large enough to amortise a round trip, small enough to keep memory flat. */
const CHUNK_BYTES = 4 << 20;

/**
 * The tuples of `rows`, encoded by `encode`, in chunks of a few MB (Database.copyIn adds the header
 * and the trailer).
 */
export async function* binaryTuples<T>(
  rows: AsyncIterable<T> | Iterable<T>,
  encode: (out: BinaryRows, row: T) => void,
): AsyncGenerator<Uint8Array> {
  const out = new BinaryRows();
  for await (const row of rows) {
    encode(out, row);
    if (out.size >= CHUNK_BYTES) yield out.take();
  }
  if (out.size > 0) yield out.take();
}
