/**
 * A pickle interpreter that never executes code from the file. A pickle is a program for a stack
 * machine; this runs only the opcodes that build inert data (protocols 2-5: numbers, strings,
 * bytes, None/True/False, lists, tuples, dicts, the memo, frames) plus GLOBAL/STACK_GLOBAL,
 * REDUCE, NEWOBJ, BUILD and BINPERSID, and those only against the caller's allow-list of globals,
 * each implemented here in TypeScript. Any other global is refused with UNSAFE_CHECKPOINT naming it
 * at the moment it is looked up, before it could be called; any other opcode (INST, OBJ,
 * NEWOBJ_EX, EXT*, the text opcodes of protocol 0) is refused likewise.
 * Every length read from the file is checked against the bytes that remain before anything is
 * allocated, the stack and memo are bounded, and the result is checked to be acyclic.
 * Python values map to: int → number (bigint beyond 2^53), float → number, str → string,
 * bytes → Uint8Array, list and tuple → array, dict → Map.
 */
import { AtlasError } from '../../errors.js';

export type PickleValue =
  null | boolean | number | bigint | string | Uint8Array | PickleValue[] | Map<PickleValue, PickleValue> | object;

/** An allowed global: `call` makes REDUCE/NEWOBJ build a value; `build` accepts a BUILD state. */
export interface PickleGlobal {
  readonly module: string;
  readonly name: string;
  call?(args: PickleValue[]): PickleValue;
  /** Applies BUILD's state to an object this global produced; absent means BUILD is refused. */
  build?(target: PickleValue, state: PickleValue): void;
}

export interface UnpickleOptions {
  /** Names the file in errors. */
  label: string;
  /** The allowed global, or undefined to refuse it. */
  findGlobal(module: string, name: string): PickleGlobal | undefined;
  /** BINPERSID: turns a persistent id into a value (PyTorch storages); absent refuses the opcode. */
  persistentLoad?(pid: PickleValue): PickleValue;
}

const MAX_STACK = 1 << 20;
const MAX_DEPTH = 256;

/** Objects that came out of REDUCE/NEWOBJ, remembered so BUILD can find the global that made them. */
const madeBy = new WeakMap<object, PickleGlobal>();

const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK',
  0x2e: 'STOP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4a: 'BININT',
  0x4b: 'BININT1',
  0x4c: 'LONG',
  0x4d: 'BININT2',
  0x4e: 'NONE',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x52: 'REDUCE',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x58: 'BINUNICODE',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x63: 'GLOBAL',
  0x64: 'DICT',
  0x7d: 'EMPTY_DICT',
  0x65: 'APPENDS',
  0x67: 'GET',
  0x68: 'BINGET',
  0x69: 'INST',
  0x6a: 'LONG_BINGET',
  0x6c: 'LIST',
  0x5d: 'EMPTY_LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x73: 'SETITEM',
  0x74: 'TUPLE',
  0x29: 'EMPTY_TUPLE',
  0x75: 'SETITEMS',
  0x47: 'BINFLOAT',
  0x80: 'PROTO',
  0x81: 'NEWOBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x8a: 'LONG1',
  0x8b: 'LONG4',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

export function unpickle(data: Uint8Array, opts: UnpickleOptions): PickleValue {
  const { label } = opts;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const bad = (what: string): never => {
    throw new AtlasError('BAD_FILE', `${label}: corrupt pickle at byte ${pos} (${what}).`);
  };
  const unsafe = (what: string): never => {
    throw new AtlasError(
      'UNSAFE_CHECKPOINT',
      `${label} ${what}; the atlas runs no code from checkpoints and refuses the file. Re-save the weights as a ` +
        `plain state dict or as safetensors.`,
    );
  };
  let pos = 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const need = (n: number): number => {
    if (n < 0 || pos + n > data.length) bad(`needs ${n} more bytes but the pickle ends at byte ${data.length}`);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = (): number => data[need(1)];
  const u16 = (): number => view.getUint16(need(2), true);
  const u32 = (): number => view.getUint32(need(4), true);
  const u64 = (): number => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(data.length)) bad(`declares ${v} bytes, more than the whole pickle`);
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => data.subarray(need(n), pos);
  const utf8 = (n: number): string => Buffer.from(bytes(n)).toString('utf8');
  const push = (v: unknown): void => {
    if (stack.length >= MAX_STACK) bad('stack overflow');
    stack.push(v);
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1])) bad('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1])) bad('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) bad('no MARK');
    return stack.splice(m!);
  };
  const asList = (v: unknown): PickleValue[] => (Array.isArray(v) ? v : bad('APPEND to a non-list'));
  const asDict = (v: unknown): Map<PickleValue, PickleValue> => (v instanceof Map ? v : bad('SETITEM on a non-dict'));
  const lookup = (module: string, name: string): PickleGlobal => {
    const g = opts.findGlobal(module, name);
    if (!g) unsafe(`refers to the global ${module}.${name}, which is not on the allow-list of plain tensor data`);
    return g!;
  };
  const call = (fn: unknown, args: unknown): PickleValue => {
    if (!(fn instanceof Object) || !('module' in fn)) bad('REDUCE of something that is not a global');
    const g = fn as PickleGlobal;
    if (!g.call) unsafe(`calls ${g.module}.${g.name}, which may only appear as a marker`);
    if (!Array.isArray(args)) bad('REDUCE arguments are not a tuple');
    const v = g.call!(args as PickleValue[]);
    if (v instanceof Object) madeBy.set(v, g);
    return v;
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80:
        u8();
        break; // PROTO
      case 0x95:
        u64();
        break; // FRAME: a length hint only
      case 0x2e: {
        // STOP
        if (stack.length !== 1 || marks.length > 0) bad('STOP with a stack of more than one value');
        const result = stack[0] as PickleValue;
        assertAcyclic(result, label);
        return result;
      }
      case 0x28:
        marks.push(stack.length);
        break;
      case 0x30:
        if (marks.length > 0 && marks[marks.length - 1] === stack.length) marks.pop();
        else pop();
        break;
      case 0x31:
        popMark();
        break;
      case 0x32:
        push(top());
        break;
      case 0x4e:
        push(null);
        break;
      case 0x88:
        push(true);
        break;
      case 0x89:
        push(false);
        break;
      case 0x4a:
        push(view.getInt32(need(4), true));
        break;
      case 0x4b:
        push(u8());
        break;
      case 0x4d:
        push(u16());
        break;
      case 0x8a:
        push(longFromBytes(bytes(u8())));
        break;
      case 0x8b: {
        const n = u32();
        if (n > 64) unsafe(`holds a ${n}-byte integer`);
        push(longFromBytes(bytes(n)));
        break;
      }
      case 0x47:
        push(view.getFloat64(need(8), false));
        break;
      case 0x58:
        push(utf8(u32()));
        break;
      case 0x8c:
        push(utf8(u8()));
        break;
      case 0x8d:
        push(utf8(u64()));
        break;
      case 0x55:
        push(Buffer.from(bytes(u8())).toString('latin1'));
        break;
      case 0x54:
        push(Buffer.from(bytes(u32())).toString('latin1'));
        break;
      case 0x43:
        push(bytes(u8()).slice());
        break;
      case 0x42:
        push(bytes(u32()).slice());
        break;
      case 0x8e:
        push(bytes(u64()).slice());
        break;
      case 0x5d:
        push([]);
        break;
      case 0x29:
        push([]);
        break;
      case 0x7d:
        push(new Map());
        break;
      case 0x6c:
        push(popMark());
        break; // LIST
      case 0x74:
        push(popMark());
        break; // TUPLE
      case 0x85:
        push([pop()]);
        break;
      case 0x86: {
        const b = pop();
        const a = pop();
        push([a, b]);
        break;
      }
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        push([a, b, c]);
        break;
      }
      case 0x64: {
        // DICT
        const items = popMark();
        if (items.length % 2) bad('DICT with an odd number of items');
        const d = new Map<PickleValue, PickleValue>();
        for (let i = 0; i < items.length; i += 2) d.set(items[i] as PickleValue, items[i + 1] as PickleValue);
        push(d);
        break;
      }
      case 0x61: {
        const v = pop();
        asList(top()).push(v as PickleValue);
        break;
      }
      case 0x65: {
        const items = popMark();
        asList(top()).push(...(items as PickleValue[]));
        break;
      }
      case 0x73: {
        const v = pop();
        const k = pop();
        asDict(top()).set(k as PickleValue, v as PickleValue);
        break;
      }
      case 0x75: {
        const items = popMark();
        if (items.length % 2) bad('SETITEMS with an odd number of items');
        const d = asDict(top());
        for (let i = 0; i < items.length; i += 2) d.set(items[i] as PickleValue, items[i + 1] as PickleValue);
        break;
      }
      case 0x71:
        memo.set(u8(), top());
        break;
      case 0x72:
        memo.set(u32(), top());
        break;
      case 0x94:
        memo.set(memo.size, top());
        break;
      case 0x68:
      case 0x6a: {
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) bad(`memo slot ${i} is empty`);
        push(memo.get(i));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = readLine();
        const name = readLine();
        push(lookup(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') bad('STACK_GLOBAL needs two strings');
        push(lookup(module as string, name as string));
        break;
      }
      case 0x52: {
        const args = pop();
        const fn = pop();
        push(call(fn, args));
        break;
      }
      case 0x81: {
        const args = pop();
        const cls = pop();
        push(call(cls, args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const target = top();
        const g = target instanceof Object ? madeBy.get(target) : undefined;
        if (!g?.build)
          unsafe(
            `sets the state of ${g ? `a ${g.module}.${g.name}` : 'a plain value'} (BUILD), which the allow-list ` +
              `does not permit`,
          );
        g!.build!(target as PickleValue, state as PickleValue);
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) unsafe('uses persistent ids, which this format does not allow');
        push(opts.persistentLoad!(pid as PickleValue));
        break;
      }
      default: {
        pos = at;
        unsafe(
          `uses pickle opcode ${OPCODE_NAMES[op] ?? `0x${op.toString(16)}`} at byte ${at}, which is not on the ` +
            `allow-list`,
        );
      }
    }
  }

  function readLine(): string {
    const end = data.indexOf(0x0a, pos);
    if (end < 0 || end - pos > 256) bad('GLOBAL name is not a short line');
    const s = Buffer.from(data.subarray(pos, end)).toString('utf8');
    pos = end + 1;
    return s;
  }
}

/** Little-endian two's complement, as LONG1/LONG4 store it. */
function longFromBytes(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** A list appended into itself would make every later walk loop; deep nesting would overflow it. */
function assertAcyclic(root: PickleValue, label: string): void {
  const onPath = new Set<object>();
  const done = new Set<object>();
  const visit = (v: unknown, depth: number): void => {
    if (!(v instanceof Object) || v instanceof Uint8Array || done.has(v)) return;
    if (depth > MAX_DEPTH)
      throw new AtlasError('BAD_FILE', `${label}: the pickle nests deeper than ${MAX_DEPTH} levels.`);
    if (onPath.has(v)) throw new AtlasError('BAD_FILE', `${label}: the pickle holds a container that contains itself.`);
    onPath.add(v);
    if (Array.isArray(v)) for (const x of v) visit(x, depth + 1);
    else if (v instanceof Map)
      for (const [k, x] of v) {
        visit(k, depth + 1);
        visit(x, depth + 1);
      }
    onPath.delete(v);
    done.add(v);
  };
  visit(root, 0);
}
