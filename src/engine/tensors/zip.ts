/**
 * Read-only zip access for the archive formats the atlas opens (NumPy .npz, PyTorch torch.save):
 * the central directory is parsed from the end-of-central-directory record (zip64 when a field is
 * 0xffff/0xffffffff), and members are read in place with positioned reads, never extracted to disk.
 * Member names are only lookup keys, but names that would escape a folder ("..", absolute paths,
 * drive letters) or repeat are refused so that no archive can alias one member for another.
 * Inflating (method 8) is capped at the member's declared size, so a zip bomb cannot grow past it.
 */
import { readSync } from 'node:fs';
import { inflateRawSync, constants as zlibConstants } from 'node:zlib';
import { AtlasError } from '../../errors.js';

export interface ZipMember {
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

/** Reads exactly `length` bytes at `position`, or throws BAD_FILE naming the file as truncated. */
export function pread(fd: number, position: number, length: number, path: string): Buffer {
  const buf = Buffer.allocUnsafe(length);
  preadInto(fd, buf, position, path);
  return buf;
}

/** Fills `target` from `position` (one copy, straight from the file into the caller's memory). */
export function preadInto(fd: number, target: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < target.byteLength) {
    const n = readSync(fd, target, done, target.byteLength - done, position + done);
    if (n === 0) throw new AtlasError('BAD_FILE', `${path} is truncated at byte ${position + done}.`);
    done += n;
  }
}

/** Every member of the archive, keyed by name. */
export function readZipDirectory(fd: number, size: number, path: string): Map<string, ZipMember> {
  const tailLen = Math.min(size, 65536 + 22);
  const tail = pread(fd, size - tailLen, tailLen, path);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0)
    throw new AtlasError('BAD_FILE', `${path} is not a zip archive or is truncated (no end-of-directory record).`);
  let count = tail.readUInt16LE(eocd + 10);
  let dirSize = tail.readUInt32LE(eocd + 12);
  let dirOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== ZIP64_LOCATOR_SIG)
      throw new AtlasError('BAD_FILE', `${path}: zip64 locator missing.`);
    const zOffset = Number(tail.readBigUInt64LE(loc + 8));
    if (zOffset + 56 > size)
      throw new AtlasError(
        'BAD_FILE',
        `${path} is truncated: its zip64 directory record lies past the end of the file.`,
      );
    const z = pread(fd, zOffset, 56, path);
    if (z.readUInt32LE(0) !== ZIP64_EOCD_SIG)
      throw new AtlasError('BAD_FILE', `${path}: zip64 end-of-directory record is corrupt.`);
    count = Number(z.readBigUInt64LE(32));
    dirSize = Number(z.readBigUInt64LE(40));
    dirOffset = Number(z.readBigUInt64LE(48));
  }
  if (dirOffset + dirSize > size)
    throw new AtlasError('BAD_FILE', `${path} is truncated: its zip directory lies past the end of the file.`);
  // Each entry takes at least 46 bytes, so a forged count cannot make the loop outrun the directory.
  if (count * 46 > dirSize)
    throw new AtlasError('BAD_FILE', `${path}: zip directory declares ${count} entries in ${dirSize} bytes.`);
  const dir = pread(fd, dirOffset, dirSize, path);
  const members = new Map<string, ZipMember>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > dir.length || dir.readUInt32LE(p) !== CENTRAL_SIG)
      throw new AtlasError('BAD_FILE', `${path}: zip directory entry ${i} is corrupt.`);
    const nameLen = dir.readUInt16LE(p + 28);
    const extraLen = dir.readUInt16LE(p + 30);
    const commentLen = dir.readUInt16LE(p + 32);
    if (p + 46 + nameLen + extraLen + commentLen > dir.length)
      throw new AtlasError('BAD_FILE', `${path}: zip directory entry ${i} is corrupt.`);
    const m: ZipMember = {
      name: dir.toString('utf8', p + 46, p + 46 + nameLen),
      method: dir.readUInt16LE(p + 10),
      compressedSize: dir.readUInt32LE(p + 20),
      uncompressedSize: dir.readUInt32LE(p + 24),
      localHeaderOffset: dir.readUInt32LE(p + 42),
    };
    applyZip64Extra(m, dir.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen));
    if (!safeMemberName(m.name))
      throw new AtlasError(
        'BAD_FILE',
        `${path}: zip member name ${JSON.stringify(m.name)} is unsafe (absolute, or leaves its folder with "..").`,
      );
    if (members.has(m.name))
      throw new AtlasError('BAD_FILE', `${path}: zip member ${JSON.stringify(m.name)} appears twice.`);
    members.set(m.name, m);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return members;
}

function safeMemberName(name: string): boolean {
  if (name === '' || name.includes('\0') || /^([/\\]|[A-Za-z]:)/.test(name)) return false;
  return !name.split(/[/\\]/).includes('..');
}

/** Absolute file offset of a member's (compressed or stored) bytes, checked to lie inside the file. */
export function memberDataStart(fd: number, m: ZipMember, size: number, path: string): number {
  if (m.localHeaderOffset + 30 > size)
    throw new AtlasError('BAD_FILE', `${path} is truncated: zip member "${m.name}" starts past the end of the file.`);
  const local = pread(fd, m.localHeaderOffset, 30, path);
  if (local.readUInt32LE(0) !== LOCAL_SIG)
    throw new AtlasError('BAD_FILE', `${path}: zip local header of "${m.name}" is corrupt.`);
  const start = m.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  if (start + m.compressedSize > size) {
    throw new AtlasError(
      'BAD_FILE',
      `${path} is truncated: zip member "${m.name}" ends at byte ${start + m.compressedSize} but the file has ` +
        `${size} bytes.`,
    );
  }
  if (m.method === 0 && m.compressedSize !== m.uncompressedSize) {
    throw new AtlasError(
      'BAD_FILE',
      `${path}: stored zip member "${m.name}" declares ${m.uncompressedSize} bytes but holds ${m.compressedSize}.`,
    );
  }
  return start;
}

/** Inflates a whole deflate member, refusing to produce more than its declared size. */
export function inflateMember(fd: number, m: ZipMember, start: number, path: string): Buffer {
  let data: Buffer;
  try {
    data = inflateRawSync(pread(fd, start, m.compressedSize, path), {
      maxOutputLength: Math.max(1, m.uncompressedSize),
    });
  } catch (e) {
    throw new AtlasError(
      'BAD_FILE',
      `${path}: zip member "${m.name}" cannot be decompressed within its declared ${m.uncompressedSize} bytes ` +
        `(${(e as Error).message}); the file may be truncated or corrupt.`,
    );
  }
  if (data.length !== m.uncompressedSize) {
    throw new AtlasError(
      'BAD_FILE',
      `${path}: zip member "${m.name}" inflates to ${data.length} bytes, expected ${m.uncompressedSize}.`,
    );
  }
  return data;
}

/** Inflates only as much of a deflate stream as the first bytes allow (enough for a small header). */
export function inflateHead(compressed: Buffer): Buffer {
  try {
    return inflateRawSync(compressed, {
      finishFlush: zlibConstants.Z_SYNC_FLUSH /* accepts a cut stream */,
      maxOutputLength: 64 << 20,
    });
  } catch {
    return Buffer.alloc(0);
  }
}

/** Zip64 extra field (id 1): 8-byte values for exactly the fields whose 32-bit slot is 0xffffffff, in order. */
function applyZip64Extra(m: ZipMember, extra: Buffer): void {
  let q = 0;
  while (q + 4 <= extra.length) {
    const id = extra.readUInt16LE(q);
    const len = extra.readUInt16LE(q + 2);
    if (id === 1) {
      let r = q + 4;
      const next = (): number => {
        if (r + 8 > extra.length)
          throw new AtlasError('BAD_FILE', `zip member "${m.name}" has a truncated zip64 extra field.`);
        const v = Number(extra.readBigUInt64LE(r));
        r += 8;
        return v;
      };
      if (m.uncompressedSize === 0xffffffff) m.uncompressedSize = next();
      if (m.compressedSize === 0xffffffff) m.compressedSize = next();
      if (m.localHeaderOffset === 0xffffffff) m.localHeaderOffset = next();
    }
    q += 4 + len;
  }
}
