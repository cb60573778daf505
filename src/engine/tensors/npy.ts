/**
 * Reader for NumPy .npz archives (a zip of .npy arrays), as Gemma Scope ships its `params.npz`.
 * Only the zip directory and the npy headers are held in memory. Stored members (np.savez) are read
 * row range by row range straight from disk; deflated members (np.savez_compressed) are inflated
 * whole with node:zlib, one member at a time, because zip deflate streams cannot be entered mid-way.
 * npy: magic "\x93NUMPY", version, header length (u16 for v1, u32 for v2/3), a Python dict literal
 * {'descr', 'fortran_order', 'shape'}, then the raw array. Supported: '<f4', '<f2', '<f8', C order.
 */
import { openSync, fstatSync, closeSync } from 'node:fs';
import { AtlasError } from '../../errors.js';
import { DType, DTYPE_BYTES, toFloat32 } from './dtype.js';
import { assertShape } from './safetensors.js';
import { ZipMember, inflateHead, inflateMember, memberDataStart, pread, readZipDirectory } from './zip.js';

const NPY_DTYPES: Record<string, DType> = { '<f4': 'F32', '<f2': 'F16', '<f8': 'F64' };

export interface NpyHeader {
  dtype: DType;
  shape: number[];
  /** Bytes before the array data (magic, version, length, dict). */
  dataOffset: number;
}

/** Parses an npy header from the first bytes of the file; `label` names the array in errors. */
export function parseNpyHeader(head: Uint8Array, label: string): NpyHeader {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (b.length < 10 || b[0] !== 0x93 || b.toString('latin1', 1, 6) !== 'NUMPY') {
    throw new AtlasError('BAD_FILE', `${label} is not an npy array (bad magic bytes).`);
  }
  const major = b[6];
  const lenBytes = major === 1 ? 2 : 4;
  if (major < 1 || major > 3)
    throw new AtlasError('UNSUPPORTED', `${label} uses npy format version ${major}; versions 1-3 are supported.`);
  if (b.length < 8 + lenBytes) throw new AtlasError('BAD_FILE', `${label} is truncated inside its npy header.`);
  const headerLen = lenBytes === 2 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const dataOffset = 8 + lenBytes + headerLen;
  if (b.length < dataOffset) throw new AtlasError('BAD_FILE', `${label} is truncated inside its npy header.`);
  const dict = b.toString(major === 3 ? 'utf8' : 'latin1', 8 + lenBytes, dataOffset);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(dict)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(dict)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(dict)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new AtlasError('BAD_FILE', `${label} has an unreadable npy header: ${dict.trim()}`);
  }
  const dtype = NPY_DTYPES[descr];
  if (!dtype) {
    throw new AtlasError(
      'UNSUPPORTED',
      `${label} has dtype '${descr}'; supported are ${Object.keys(NPY_DTYPES).join(', ')} (little-endian floats).`,
    );
  }
  if (fortran === 'True') {
    throw new AtlasError(
      'UNSUPPORTED',
      `${label} is stored in Fortran (column-major) order; re-save it with numpy.ascontiguousarray.`,
    );
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0))
    throw new AtlasError('BAD_FILE', `${label} has an invalid npy shape (${shapeText}).`);
  return { dtype, shape, dataOffset };
}

export interface NpzArrayInfo {
  name: string;
  dtype: DType;
  shape: number[];
}

interface ArrayEntry extends NpzArrayInfo {
  member: ZipMember;
  /** Absolute file offset of the member's data (compressed or stored). */
  memberStart: number;
  /** Offset of the array data inside the uncompressed member. */
  dataOffset: number;
}

export class NpzFile {
  private fd: number | null;
  private readonly arrays: Map<string, ArrayEntry>;
  /** The one inflated deflate member kept so that consecutive row reads do not re-inflate it. */
  private inflated: { name: string; data: Buffer } | null = null;

  private constructor(
    readonly path: string,
    fd: number,
    arrays: Map<string, ArrayEntry>,
  ) {
    this.fd = fd;
    this.arrays = arrays;
  }

  static open(path: string): NpzFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new AtlasError('BAD_FILE', `Cannot open npz file ${path}: ${(e as Error).message}`);
    }
    try {
      const size = fstatSync(fd).size;
      const members = readZipDirectory(fd, size, path).values();
      const arrays = new Map<string, ArrayEntry>();
      for (const m of members) {
        if (!m.name.endsWith('.npy')) continue;
        const label = `${path}: array "${m.name.slice(0, -4)}"`;
        if (m.method !== 0 && m.method !== 8) {
          throw new AtlasError(
            'UNSUPPORTED',
            `${label} uses zip compression method ${m.method}; only stored (0) and deflate (8) are supported.`,
          );
        }
        const memberStart = memberDataStart(fd, m, size, path);
        const head =
          m.method === 0
            ? pread(fd, memberStart, Math.min(m.uncompressedSize, 65536), path)
            : inflateHead(pread(fd, memberStart, Math.min(m.compressedSize, 65536), path));
        const h = parseNpyHeader(head, label);
        const byteLength = h.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[h.dtype];
        if (h.dataOffset + byteLength > m.uncompressedSize) {
          throw new AtlasError(
            'BAD_FILE',
            `${label} is truncated: shape [${h.shape}] needs ${byteLength} bytes but the member holds ` +
              `${m.uncompressedSize - h.dataOffset}.`,
          );
        }
        const name = m.name.slice(0, -4);
        arrays.set(name, { name, dtype: h.dtype, shape: h.shape, member: m, memberStart, dataOffset: h.dataOffset });
      }
      return new NpzFile(path, fd, arrays);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.arrays.keys()];
  }

  has(name: string): boolean {
    return this.arrays.has(name);
  }

  info(name: string): NpzArrayInfo {
    const a = this.arrays.get(name);
    if (!a)
      throw new AtlasError('BAD_FILE', `${this.path} has no array "${name}" (it has: ${this.names().join(', ')}).`);
    return { name: a.name, dtype: a.dtype, shape: a.shape };
  }

  readF32(name: string, expectShape?: number[]): Float32Array {
    const a = this.entry(name);
    if (expectShape) assertShape(this.path, name, a.shape, expectShape);
    return this.readRowsF32(name, 0, a.shape[0] ?? 1);
  }

  /** Rows [start, start+count) of the array's first dimension as float32. */
  readRowsF32(name: string, start: number, count: number): Float32Array {
    const a = this.entry(name);
    const rows = a.shape.length === 0 ? 1 : a.shape[0];
    if (start < 0 || start + count > rows) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `Rows ${start}..${start + count} are outside array "${name}" of shape [${a.shape}].`,
      );
    }
    const rowBytes = a.shape.slice(1).reduce((x, y) => x * y, 1) * DTYPE_BYTES[a.dtype];
    const offset = a.dataOffset + start * rowBytes;
    const length = count * rowBytes;
    if (a.member.method === 0)
      return toFloat32(pread(this.openFd(), a.memberStart + offset, length, this.path), a.dtype);
    const data = this.inflate(a);
    return toFloat32(new Uint8Array(data.buffer, data.byteOffset + offset, length), a.dtype);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.inflated = null;
  }

  private entry(name: string): ArrayEntry {
    this.info(name);
    return this.arrays.get(name)!;
  }

  private openFd(): number {
    if (this.fd === null) throw new Error(`npz file ${this.path} is closed`);
    return this.fd;
  }

  private inflate(a: ArrayEntry): Buffer {
    if (this.inflated?.name === a.name) return this.inflated.data;
    this.inflated = null;
    const data = inflateMember(this.openFd(), a.member, a.memberStart, this.path);
    this.inflated = { name: a.name, data };
    return data;
  }
}
