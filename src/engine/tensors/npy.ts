/**
 * Reader for NumPy .npz archives (a zip of .npy arrays), as Gemma Scope ships its `params.npz`.
 * Only the zip directory and the npy headers are held in memory. Stored members (np.savez) are read
 * row range by row range straight from disk; deflated members (np.savez_compressed) are inflated
 * whole with node:zlib, one member at a time, because zip deflate streams cannot be entered mid-way.
 * npy: magic "\x93NUMPY", version, header length (u16 for v1, u32 for v2/3), a Python dict literal
 * {'descr', 'fortran_order', 'shape'}, then the raw array. Supported: '<f4', '<f2', '<f8', C order.
 */
import { openSync, readSync, fstatSync, closeSync } from 'node:fs';
import { inflateRawSync, constants as zlibConstants } from 'node:zlib';
import { AtlasError } from '../../errors.js';
import { DType, DTYPE_BYTES, toFloat32 } from './dtype.js';
import { assertShape } from './safetensors.js';

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
  if (major < 1 || major > 3) throw new AtlasError('UNSUPPORTED', `${label} uses npy format version ${major}; versions 1-3 are supported.`);
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
    throw new AtlasError('UNSUPPORTED', `${label} has dtype '${descr}'; supported are ${Object.keys(NPY_DTYPES).join(', ')} (little-endian floats).`);
  }
  if (fortran === 'True') {
    throw new AtlasError('UNSUPPORTED', `${label} is stored in Fortran (column-major) order; re-save it with numpy.ascontiguousarray.`);
  }
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new AtlasError('BAD_FILE', `${label} has an invalid npy shape (${shapeText}).`);
  return { dtype, shape, dataOffset };
}

interface ZipMember {
  name: string;
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
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

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

export class NpzFile {
  private fd: number | null;
  private readonly arrays: Map<string, ArrayEntry>;
  /** The one inflated deflate member kept so that consecutive row reads do not re-inflate it. */
  private inflated: { name: string; data: Buffer } | null = null;

  private constructor(readonly path: string, fd: number, arrays: Map<string, ArrayEntry>) {
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
      const members = readCentralDirectory(fd, size, path);
      const arrays = new Map<string, ArrayEntry>();
      for (const m of members) {
        if (!m.name.endsWith('.npy')) continue;
        const label = `${path}: array "${m.name.slice(0, -4)}"`;
        if (m.method !== 0 && m.method !== 8) {
          throw new AtlasError('UNSUPPORTED', `${label} uses zip compression method ${m.method}; only stored (0) and deflate (8) are supported.`);
        }
        const local = pread(fd, m.localHeaderOffset, 30, path);
        if (local.readUInt32LE(0) !== LOCAL_SIG) throw new AtlasError('BAD_FILE', `${label}: zip local header is corrupt.`);
        const memberStart = m.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
        if (memberStart + m.compressedSize > size) {
          throw new AtlasError('BAD_FILE', `${path} is truncated: array "${m.name.slice(0, -4)}" ends at byte ${memberStart + m.compressedSize} but the file has ${size} bytes.`);
        }
        const head = m.method === 0
          ? pread(fd, memberStart, Math.min(m.uncompressedSize, 65536), path)
          : inflateHead(pread(fd, memberStart, Math.min(m.compressedSize, 65536), path));
        const h = parseNpyHeader(head, label);
        const byteLength = h.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[h.dtype];
        if (h.dataOffset + byteLength > m.uncompressedSize) {
          throw new AtlasError('BAD_FILE', `${label} is truncated: shape [${h.shape}] needs ${byteLength} bytes but the member holds ${m.uncompressedSize - h.dataOffset}.`);
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
    if (!a) throw new AtlasError('BAD_FILE', `${this.path} has no array "${name}" (it has: ${this.names().join(', ')}).`);
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
      throw new AtlasError('BAD_USER_INPUT', `Rows ${start}..${start + count} are outside array "${name}" of shape [${a.shape}].`);
    }
    const rowBytes = a.shape.slice(1).reduce((x, y) => x * y, 1) * DTYPE_BYTES[a.dtype];
    const offset = a.dataOffset + start * rowBytes;
    const length = count * rowBytes;
    if (a.member.method === 0) return toFloat32(pread(this.openFd(), a.memberStart + offset, length, this.path), a.dtype);
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
    let data: Buffer;
    try {
      data = inflateRawSync(pread(this.openFd(), a.memberStart, a.member.compressedSize, this.path));
    } catch (e) {
      throw new AtlasError('BAD_FILE', `${this.path}: array "${a.name}" cannot be decompressed (${(e as Error).message}); the file may be truncated or corrupt.`);
    }
    if (data.length !== a.member.uncompressedSize) {
      throw new AtlasError('BAD_FILE', `${this.path}: array "${a.name}" inflates to ${data.length} bytes, expected ${a.member.uncompressedSize}.`);
    }
    this.inflated = { name: a.name, data };
    return data;
  }
}

function pread(fd: number, position: number, length: number, path: string): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new AtlasError('BAD_FILE', `${path} is truncated at byte ${position + done}.`);
    done += n;
  }
  return buf;
}

/** Inflates only as much of a deflate stream as the first bytes allow (enough for an npy header). */
function inflateHead(compressed: Buffer): Buffer {
  try {
    return inflateRawSync(compressed, { finishFlush: zlibConstants.Z_SYNC_FLUSH } /* accepts a cut stream */);
  } catch {
    return Buffer.alloc(0);
  }
}

function readCentralDirectory(fd: number, size: number, path: string): ZipMember[] {
  const tailLen = Math.min(size, 65536 + 22);
  const tail = pread(fd, size - tailLen, tailLen, path);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG) { eocd = i; break; }
  }
  if (eocd < 0) throw new AtlasError('BAD_FILE', `${path} is not a zip/npz archive or is truncated (no end-of-directory record).`);
  let count = tail.readUInt16LE(eocd + 10);
  let dirSize = tail.readUInt32LE(eocd + 12);
  let dirOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== ZIP64_LOCATOR_SIG) throw new AtlasError('BAD_FILE', `${path}: zip64 locator missing.`);
    const z = pread(fd, Number(tail.readBigUInt64LE(loc + 8)), 56, path);
    if (z.readUInt32LE(0) !== ZIP64_EOCD_SIG) throw new AtlasError('BAD_FILE', `${path}: zip64 end-of-directory record is corrupt.`);
    count = Number(z.readBigUInt64LE(32));
    dirSize = Number(z.readBigUInt64LE(40));
    dirOffset = Number(z.readBigUInt64LE(48));
  }
  if (dirOffset + dirSize > size) throw new AtlasError('BAD_FILE', `${path} is truncated: its zip directory lies past the end of the file.`);
  const dir = pread(fd, dirOffset, dirSize, path);
  const members: ZipMember[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > dir.length || dir.readUInt32LE(p) !== CENTRAL_SIG) throw new AtlasError('BAD_FILE', `${path}: zip directory entry ${i} is corrupt.`);
    const nameLen = dir.readUInt16LE(p + 28);
    const extraLen = dir.readUInt16LE(p + 30);
    const commentLen = dir.readUInt16LE(p + 32);
    const m: ZipMember = {
      name: dir.toString('utf8', p + 46, p + 46 + nameLen),
      method: dir.readUInt16LE(p + 10),
      compressedSize: dir.readUInt32LE(p + 20),
      uncompressedSize: dir.readUInt32LE(p + 24),
      localHeaderOffset: dir.readUInt32LE(p + 42),
    };
    applyZip64Extra(m, dir.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen));
    members.push(m);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return members;
}

/** Zip64 extra field (id 1): 8-byte values for exactly the fields whose 32-bit slot is 0xffffffff, in order. */
function applyZip64Extra(m: ZipMember, extra: Buffer): void {
  let q = 0;
  while (q + 4 <= extra.length) {
    const id = extra.readUInt16LE(q);
    const len = extra.readUInt16LE(q + 2);
    if (id === 1) {
      let r = q + 4;
      const next = (): number => { const v = Number(extra.readBigUInt64LE(r)); r += 8; return v; };
      if (m.uncompressedSize === 0xffffffff) m.uncompressedSize = next();
      if (m.compressedSize === 0xffffffff) m.compressedSize = next();
      if (m.localHeaderOffset === 0xffffffff) m.localHeaderOffset = next();
    }
    q += 4 + len;
  }
}
