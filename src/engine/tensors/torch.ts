/**
 * Safe reader for PyTorch checkpoints written by torch.save (the zip format, PyTorch 1.6+):
 *   <prefix>/data.pkl   the pickled object (protocol 2+), tensors in it as
 *                       torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)
 *   <prefix>/data/<key> the raw little-endian bytes of each storage, stored uncompressed
 *   <prefix>/byteorder  "little" or "big" (PyTorch 2.1+; absent means little)
 * A storage enters the pickle as the persistent id ('storage', torch.<Type>Storage, key, location,
 * numel). The pickle runs through ./pickle.ts against the allow-list below, so nothing in the file
 * is executed; tensors are views (dtype, shape, strides, offset) whose bytes stay on disk until
 * read, then come straight from the file into the result (one copy for contiguous float32).
 * Every view is checked at open time to lie inside a storage, and every storage inside its member.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { AtlasError } from '../../errors.js';
import { DType, DTYPE_BYTES, toFloat32 } from './dtype.js';
import { assertShape } from './safetensors.js';
import { PickleGlobal, PickleValue, unpickle } from './pickle.js';
import { ZipMember, inflateMember, memberDataStart, pread, preadInto, readZipDirectory } from './zip.js';

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  UntypedStorage: 'U8',
};

const TORCH_DTYPES: Record<string, DType> = {
  float32: 'F32',
  float: 'F32',
  float16: 'F16',
  half: 'F16',
  bfloat16: 'BF16',
  float64: 'F64',
  double: 'F64',
  int64: 'I64',
  long: 'I64',
  int32: 'I32',
  int: 'I32',
  int16: 'I16',
  short: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

/** data.pkl is metadata only; anything near this size is not a checkpoint the atlas should parse. */
const MAX_PICKLE_BYTES = 256 * 1024 * 1024;

/** A torch dtype or storage class named in the pickle: a marker, never called. */
export class TorchDTypeRef {
  constructor(
    readonly dtype: DType,
    readonly torchName: string,
  ) {}
}

export interface TorchStorage {
  key: string;
  dtype: DType;
  /** Elements of `dtype` the storage holds. */
  numel: number;
  /** Absolute file offset of the storage's first byte. */
  fileOffset: number;
}

/** A strided view of a storage, as torch describes a tensor. Offsets and strides count elements. */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}

  get dtype(): DType {
    return this.storage.dtype;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  isContiguous(): boolean {
    let expect = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.stride[i] !== expect) return false;
      expect *= this.shape[i];
    }
    return true;
  }

  /** Rows [start, start+count) of the first dimension, as a view. */
  rows(start: number, count: number): TorchTensor {
    const n = this.shape.length === 0 ? 1 : this.shape[0];
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > n) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `Rows ${start}..${start + count} are outside a tensor of shape [${this.shape.join(', ')}].`,
      );
    }
    if (this.shape.length === 0) return this;
    return new TorchTensor(
      this.storage,
      this.offset + start * this.stride[0],
      [count, ...this.shape.slice(1)],
      this.stride,
    );
  }
}

export function isTorchTensor(v: unknown): v is TorchTensor {
  return v instanceof TorchTensor;
}

export class TorchCheckpoint {
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    readonly root: PickleValue,
  ) {
    this.fd = fd;
  }

  static open(path: string): TorchCheckpoint {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new AtlasError('BAD_FILE', `Cannot open PyTorch checkpoint ${path}: ${(e as Error).message}`);
    }
    try {
      const size = fstatSync(fd).size;
      const magic = size >= 4 ? pread(fd, 0, 4, path) : Buffer.alloc(0);
      if (magic.length === 4 && magic[0] === 0x80 && magic[1] === 0x02) {
        throw new AtlasError(
          'UNSUPPORTED',
          `${path} uses the legacy torch.save format (before PyTorch 1.6); load it and save it again with a recent ` +
            `PyTorch (torch.save writes zip archives since 1.6).`,
        );
      }
      if (magic.length < 4 || magic.readUInt32LE(0) !== 0x04034b50) {
        throw new AtlasError(
          'BAD_FILE',
          `${path} is not a PyTorch checkpoint (a torch.save zip archive); it may be truncated.`,
        );
      }
      const members = readZipDirectory(fd, size, path);
      const pkls = [...members.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
      if (pkls.length !== 1) {
        throw new AtlasError(
          'BAD_FILE',
          `${path} is a zip archive but not a torch.save checkpoint: it has ${pkls.length} <folder>/data.pkl ` +
            `members, expected one.`,
        );
      }
      const prefix = pkls[0].slice(0, -'data.pkl'.length);
      const byteorder = members.get(`${prefix}byteorder`);
      if (byteorder && readMember(fd, byteorder, size, path, 16).toString('latin1').trim() !== 'little') {
        throw new AtlasError(
          'UNSUPPORTED',
          `${path} stores big-endian tensors; re-save it on a little-endian machine.`,
        );
      }
      const pkl = members.get(pkls[0])!;
      if (pkl.uncompressedSize > MAX_PICKLE_BYTES) {
        throw new AtlasError(
          'BAD_FILE',
          `${path}: data.pkl declares ${pkl.uncompressedSize} bytes, over the ${MAX_PICKLE_BYTES} a checkpoint's ` +
            `metadata may take.`,
        );
      }
      const storages = new Map<string, TorchStorage>();
      const root = unpickle(readMember(fd, pkl, size, path, MAX_PICKLE_BYTES), {
        label: `${path} (data.pkl)`,
        findGlobal: torchGlobal,
        persistentLoad: (pid) =>
          loadStorage(
            pid,
            storages,
            (key) => {
              const m = members.get(`${prefix}data/${key}`);
              if (!m)
                throw new AtlasError(
                  'BAD_FILE',
                  `${path} is missing storage "${prefix}data/${key}"; the archive may be truncated.`,
                );
              if (m.method !== 0) {
                throw new AtlasError(
                  'BAD_FILE',
                  `${path}: storage "${m.name}" is compressed (zip method ${m.method}); torch.save stores storages ` +
                    `uncompressed.`,
                );
              }
              return { member: m, start: memberDataStart(fd, m, size, path) };
            },
            path,
          ),
      });
      return new TorchCheckpoint(path, fd, root);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** The tensor's values as float32 in row-major order of its shape, whatever its strides. */
  readF32(t: TorchTensor): Float32Array {
    const fd = this.openFd();
    const n = t.numel;
    const es = DTYPE_BYTES[t.dtype];
    if (n === 0) return new Float32Array(0);
    if (t.isContiguous()) {
      const position = t.storage.fileOffset + t.offset * es;
      if (t.dtype === 'F32') {
        const out = new Float32Array(n);
        preadInto(fd, new Uint8Array(out.buffer), position, this.path);
        return out;
      }
      return toFloat32(pread(fd, position, n * es, this.path), t.dtype);
    }
    // Strided: read the span the view covers once, then gather.
    const last = t.shape.reduce((s, d, i) => s + (d - 1) * t.stride[i], 0);
    const span = toFloat32(pread(fd, t.storage.fileOffset + t.offset * es, (last + 1) * es, this.path), t.dtype);
    const out = new Float32Array(n);
    const rank = t.shape.length;
    const idx = new Array<number>(rank).fill(0);
    let src = 0;
    for (let i = 0; i < n; i++) {
      out[i] = span[src];
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]++;
        src += t.stride[d];
        if (idx[d] < t.shape[d]) break;
        src -= idx[d] * t.stride[d];
        idx[d] = 0;
      }
    }
    return out;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private openFd(): number {
    if (this.fd === null) throw new Error(`PyTorch checkpoint ${this.path} is closed`);
    return this.fd;
  }
}

function readMember(fd: number, m: ZipMember, size: number, path: string, max: number): Buffer {
  if (m.uncompressedSize > max)
    throw new AtlasError(
      'BAD_FILE',
      `${path}: zip member "${m.name}" declares ${m.uncompressedSize} bytes, more than expected.`,
    );
  const start = memberDataStart(fd, m, size, path);
  if (m.method === 0) return pread(fd, start, m.uncompressedSize, path);
  if (m.method === 8) return inflateMember(fd, m, start, path);
  throw new AtlasError(
    'UNSUPPORTED',
    `${path}: zip member "${m.name}" uses compression method ${m.method}; only stored and deflate are supported.`,
  );
}

const nonNegInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** ('storage', torch.<Type>Storage, key, location, numel): checked against the member that holds it. */
function loadStorage(
  pid: PickleValue,
  storages: Map<string, TorchStorage>,
  locate: (key: string) => { member: ZipMember; start: number },
  path: string,
): TorchStorage {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length !== 5) {
    throw new AtlasError(
      'UNSAFE_CHECKPOINT',
      `${path} uses a persistent id other than a torch storage (${describe(pid)}); the atlas refuses it.`,
    );
  }
  const [, type, key, , numel] = pid;
  if (
    !(type instanceof TorchDTypeRef) ||
    typeof key !== 'string' ||
    !/^[A-Za-z0-9_]+$/.test(key) ||
    !nonNegInt(numel)
  ) {
    throw new AtlasError('BAD_FILE', `${path}: malformed storage reference (${describe(pid)}).`);
  }
  const known = storages.get(key);
  if (known) {
    if (known.dtype !== type.dtype || known.numel !== numel)
      throw new AtlasError('BAD_FILE', `${path}: storage "${key}" is declared twice with different types or sizes.`);
    return known;
  }
  const { member, start } = locate(key);
  const bytes = numel * DTYPE_BYTES[type.dtype];
  if (bytes > member.uncompressedSize) {
    throw new AtlasError(
      'BAD_FILE',
      `${path}: storage "${key}" declares ${numel} ${type.torchName} elements (${bytes} bytes) but the archive ` +
        `holds ${member.uncompressedSize} bytes for it.`,
    );
  }
  const s: TorchStorage = { key, dtype: type.dtype, numel, fileOffset: start };
  storages.set(key, s);
  return s;
}

function describe(v: PickleValue): string {
  const s = Array.isArray(v)
    ? `(${v.map((x) => (typeof x === 'string' ? JSON.stringify(x) : String(x))).join(', ')})`
    : String(v);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

function intList(v: PickleValue, what: string): number[] {
  if (!Array.isArray(v) || !v.every(nonNegInt) || v.length > 32)
    throw new AtlasError('BAD_FILE', `A tensor's ${what} is not a list of non-negative integers (${describe(v)}).`);
  return v as number[];
}

/**
 * torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]).
 */
function rebuildTensor(args: PickleValue[]): TorchTensor {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof Object) || !('fileOffset' in storage) || !nonNegInt(offset)) {
    throw new AtlasError(
      'BAD_FILE',
      `A tensor in the checkpoint does not rebuild from a storage and an offset (${describe(args)}).`,
    );
  }
  const st = storage as TorchStorage;
  const shape = intList(size, 'size');
  const strides = intList(stride, 'stride');
  if (shape.length !== strides.length)
    throw new AtlasError('BAD_FILE', `A tensor has ${shape.length} sizes but ${strides.length} strides.`);
  let numel = 1;
  for (const d of shape) {
    numel *= d;
    if (numel > Number.MAX_SAFE_INTEGER / 8)
      throw new AtlasError('BAD_FILE', `A tensor of shape [${shape.join(', ')}] is larger than any file.`);
  }
  if (numel > 0) {
    const last = offset + shape.reduce((s, d, i) => s + (d - 1) * strides[i], 0);
    if (last >= st.numel) {
      throw new AtlasError(
        'BAD_FILE',
        `A tensor of shape [${shape.join(', ')}] (strides [${strides.join(', ')}], offset ${offset}) reaches ` +
          `element ${last} of storage "${st.key}", which holds ${st.numel}.`,
      );
    }
  }
  return new TorchTensor(st, offset, shape, strides);
}

function global(module: string, name: string, rest: Partial<PickleGlobal> = {}): PickleGlobal {
  return { module, name, ...rest };
}

const ORDERED_DICT = global('collections', 'OrderedDict', {
  call: (args) => {
    const d = new Map<PickleValue, PickleValue>();
    const items = args[0];
    if (Array.isArray(items)) for (const kv of items) if (Array.isArray(kv) && kv.length === 2) d.set(kv[0], kv[1]);
    return d;
  },
  // state_dict() attaches `_metadata` (module versions) as an attribute; it carries no weights.
  build: () => undefined,
});

const firstArgTensor =
  (name: string) =>
  (args: PickleValue[]): PickleValue => {
    if (!isTorchTensor(args[0]))
      throw new AtlasError('BAD_FILE', `torch._utils.${name} was given something other than a tensor.`);
    return args[0];
  };

const TENSOR_CLASSES = new Set(['torch.Tensor', 'torch.nn.parameter.Parameter', 'torch._tensor.Tensor']);

const FIXED: Record<string, PickleGlobal> = {
  'collections.OrderedDict': ORDERED_DICT,
  'torch._utils._rebuild_tensor_v2': global('torch._utils', '_rebuild_tensor_v2', { call: rebuildTensor }),
  'torch._utils._rebuild_tensor': global('torch._utils', '_rebuild_tensor', { call: rebuildTensor }),
  'torch._utils._rebuild_parameter': global('torch._utils', '_rebuild_parameter', {
    call: firstArgTensor('_rebuild_parameter'),
  }),
  'torch._utils._rebuild_parameter_with_state': global('torch._utils', '_rebuild_parameter_with_state', {
    call: firstArgTensor('_rebuild_parameter_with_state'),
  }),
  // _rebuild_from_type_v2(func, type, args, state): a tensor subclass or a tensor with attributes.
  'torch._tensor._rebuild_from_type_v2': global('torch._tensor', '_rebuild_from_type_v2', {
    call: (args) => {
      const [fn, type, inner] = args;
      const typeName =
        type instanceof Object && 'module' in type
          ? `${(type as PickleGlobal).module}.${(type as PickleGlobal).name}`
          : '';
      if (!TENSOR_CLASSES.has(typeName) || !(fn instanceof Object) || !('call' in fn) || !Array.isArray(inner)) {
        throw new AtlasError(
          'UNSAFE_CHECKPOINT',
          `A tensor in the checkpoint is rebuilt as ${typeName || 'an unknown type'}; only torch.Tensor and ` +
            `torch.nn.Parameter are allowed.`,
        );
      }
      return (fn as PickleGlobal).call!(inner);
    },
  }),
  'torch.Tensor': global('torch', 'Tensor'),
  'torch._tensor.Tensor': global('torch._tensor', 'Tensor'),
  'torch.nn.parameter.Parameter': global('torch.nn.parameter', 'Parameter'),
  'torch.Size': global('torch', 'Size', { call: (args) => (Array.isArray(args[0]) ? args[0] : []) }),
  'torch.storage.UntypedStorage': Object.assign(
    new TorchDTypeRef('U8', 'UntypedStorage'),
    global('torch.storage', 'UntypedStorage'),
  ),
};

/** The allow-list: fixed entries, the torch.<Type>Storage classes and the torch dtypes (markers only). */
function torchGlobal(module: string, name: string): PickleGlobal | undefined {
  const fixed = FIXED[`${module}.${name}`];
  if (fixed) return fixed;
  if (module === 'torch' && STORAGE_DTYPES[name])
    return Object.assign(new TorchDTypeRef(STORAGE_DTYPES[name], name), { module, name });
  if (module === 'torch' && TORCH_DTYPES[name])
    return Object.assign(new TorchDTypeRef(TORCH_DTYPES[name], `torch.${name}`), { module, name });
  return undefined;
}

/**
 * A checkpoint whose root is a state dict: a (possibly nested) dict of name → tensor or plain value.
 * Nested dicts flatten with '.', as nn.Module.state_dict names its entries. Offers the same
 * has/info/readF32/readRowsF32 interface as SafetensorsFile.
 */
export class TorchStateDict {
  readonly tensors = new Map<string, TorchTensor>();
  /** Entries that are not tensors (numbers, strings, nested lists), by flattened name. */
  readonly values = new Map<string, PickleValue>();

  private constructor(readonly checkpoint: TorchCheckpoint) {
    const walk = (d: Map<PickleValue, PickleValue>, prefix: string): void => {
      for (const [k, v] of d) {
        const name = `${prefix}${String(k)}`;
        if (isTorchTensor(v)) this.tensors.set(name, v);
        else if (v instanceof Map) {
          this.values.set(name, v);
          walk(v, `${name}.`);
        } else this.values.set(name, v);
      }
    };
    if (!(checkpoint.root instanceof Map)) {
      throw new AtlasError(
        'BAD_FILE',
        `${checkpoint.path} does not hold a state dict (a dict of tensors) but ${describe(checkpoint.root)}.`,
      );
    }
    walk(checkpoint.root, '');
  }

  static open(path: string): TorchStateDict {
    const c = TorchCheckpoint.open(path);
    try {
      return new TorchStateDict(c);
    } catch (e) {
      c.close();
      throw e;
    }
  }

  get path(): string {
    return this.checkpoint.path;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  tensor(name: string): TorchTensor {
    const t = this.tensors.get(name);
    if (!t) {
      const have = [...this.tensors.keys()].slice(0, 20).join(', ');
      throw new AtlasError('BAD_FILE', `${this.path} has no tensor "${name}" (it has: ${have}).`);
    }
    return t;
  }

  info(name: string): { shape: number[]; dtype: DType } {
    const t = this.tensor(name);
    return { shape: [...t.shape], dtype: t.dtype };
  }

  readF32(name: string, expectShape?: number[]): Float32Array {
    const t = this.tensor(name);
    if (expectShape) assertShape(this.path, name, [...t.shape], expectShape);
    return this.checkpoint.readF32(t);
  }

  readRowsF32(name: string, start: number, count: number): Float32Array {
    return this.checkpoint.readF32(this.tensor(name).rows(start, count));
  }

  close(): void {
    this.checkpoint.close();
  }
}
