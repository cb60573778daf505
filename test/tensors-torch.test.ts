/**
 * The PyTorch checkpoint reader against files written by torch.save itself
 * (tools/fixtures/torch_fixtures.py): every value compared with what torch read back, and every
 * hostile checkpoint refused with a coded error before anything from it could run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TorchCheckpoint, TorchStateDict, isTorchTensor } from '../src/engine/tensors/torch.js';
import { unpickle } from '../src/engine/tensors/pickle.js';
import { isAtlasError } from '../src/errors.js';
import { tempDir } from './helpers/sae-fixtures.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'torch');
const fixture = (name: string): string => join(FIXTURES, name);

interface Expected {
  tensors: Record<string, { shape: number[]; values: number[] }>;
  values: Record<string, unknown>;
}

function expectCode(fn: () => unknown, code: string, ...mentions: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isAtlasError(e), `expected an AtlasError, got ${e}`);
    assert.equal(e.code, code, e.message);
    for (const m of mentions) {
      if (typeof m === 'string') assert.ok(e.message.includes(m), `"${e.message}" should mention ${m}`);
      else assert.match(e.message, m);
    }
    return true;
  });
}

test('every tensor kind torch.save writes reads back as torch read it', () => {
  const expected = JSON.parse(readFileSync(fixture('basic.expected.json'), 'utf8')) as Expected;
  const sd = TorchStateDict.open(fixture('basic.pt'));
  try {
    assert.deepEqual([...sd.tensors.keys()].sort(), Object.keys(expected.tensors).sort());
    for (const [name, want] of Object.entries(expected.tensors)) {
      assert.deepEqual(sd.info(name).shape, want.shape, name);
      const got = sd.readF32(name);
      assert.equal(got.length, want.values.length, name);
      // float32 holds every value exactly except i64 2^40 and i32 2^30, which are exact in float32 too.
      for (let i = 0; i < got.length; i++) assert.equal(got[i], Math.fround(want.values[i]), `${name}[${i}]`);
    }
    assert.deepEqual(sd.info('f16').dtype, 'F16');
    assert.deepEqual(sd.info('bf16').dtype, 'BF16');
    assert.deepEqual(sd.info('bool').dtype, 'BOOL');
    assert.equal(sd.tensor('transposed').isContiguous(), false);
    // Rows of a strided view come from its own strides, not from the storage's layout.
    assert.deepEqual([...sd.readRowsF32('transposed', 2, 2)], expected.tensors.transposed.values.slice(2 * 5, 4 * 5));
    const v = expected.values;
    assert.equal(sd.values.get('name'), v.name);
    assert.equal(sd.values.get('count'), v.count);
    assert.equal(sd.values.get('huge_int'), BigInt(v.huge_int as string));
    assert.equal(sd.values.get('ratio'), v.ratio);
    assert.equal(sd.values.get('flag'), v.flag);
    assert.equal(sd.values.get('nothing'), v.nothing);
    assert.deepEqual(sd.values.get('items'), v.items);
    assert.deepEqual(sd.values.get('pair'), v.pair);
    assert.equal(sd.values.get('inner.note'), v['inner.note']);
  } finally {
    sd.close();
  }
});

test('tensor bytes stay on disk until read', () => {
  const { dir, cleanup } = tempDir();
  try {
    const path = join(dir, 'basic.pt');
    copyFileSync(fixture('basic.pt'), path);
    const c = TorchCheckpoint.open(path);
    try {
      // Overwrite the file's storage bytes after open: a lazy reader sees the change.
      const bytes = readFileSync(path);
      const root = c.root as Map<unknown, unknown>;
      const t = root.get('f32');
      assert.ok(isTorchTensor(t));
      const at = t.storage.fileOffset + t.offset * 4;
      bytes.writeFloatLE(123.5, at);
      writeFileSync(path, bytes);
      assert.equal(c.readF32(t)[0], 123.5);
    } finally {
      c.close();
    }
  } finally {
    cleanup();
  }
});

test('hostile pickles are refused as UNSAFE_CHECKPOINT, naming the global or opcode', () => {
  const open = (name: string) => () => TorchStateDict.open(fixture(name)).close();
  expectCode(open('hostile-os-system.pt'), 'UNSAFE_CHECKPOINT', 'posix.system');
  expectCode(open('hostile-eval.pt'), 'UNSAFE_CHECKPOINT', 'builtins.eval');
  // Protocol 2 writes subprocess under its Python 2 name, commands.
  expectCode(open('hostile-popen-after-tensor.pt'), 'UNSAFE_CHECKPOINT', 'commands.Popen');
  expectCode(open('hostile-torch-load.pt'), 'UNSAFE_CHECKPOINT', 'torch.load');
  expectCode(open('hostile-getattr.pt'), 'UNSAFE_CHECKPOINT', 'builtins.getattr');
  expectCode(open('hostile-inst.pt'), 'UNSAFE_CHECKPOINT', 'INST');
  expectCode(open('hostile-call-marker.pt'), 'UNSAFE_CHECKPOINT', 'torch.FloatStorage');
  expectCode(open('hostile-build.pt'), 'UNSAFE_CHECKPOINT', 'BUILD');
});

test('sizes that lie, traversal names, cycles and zip bombs are BAD_FILE', () => {
  const open = (name: string) => () => TorchStateDict.open(fixture(name)).close();
  expectCode(open('hostile-huge-storage.pt'), 'BAD_FILE', 'storage "0"', '1000000000000');
  expectCode(open('hostile-huge-view.pt'), 'BAD_FILE', '[1000, 1000]', 'holds 6');
  expectCode(open('hostile-overflow-shape.pt'), 'BAD_FILE', 'larger than any file');
  expectCode(open('hostile-huge-string.pt'), 'BAD_FILE', 'corrupt pickle');
  expectCode(open('hostile-traversal-member.pt'), 'BAD_FILE', 'unsafe', 'archive/../../evil');
  expectCode(open('hostile-traversal-key.pt'), 'BAD_FILE', 'malformed storage reference', 'etc/passwd');
  expectCode(open('hostile-cycle.pt'), 'BAD_FILE', 'contains itself');
  expectCode(open('hostile-zip-bomb.pt'), 'BAD_FILE', 'declared 100 bytes');
  expectCode(open('hostile-zip-bomb-declared.pt'), 'BAD_FILE', 'data.pkl', String(1 << 30));
  expectCode(open('legacy.pt'), 'UNSUPPORTED', 'legacy torch.save format');
});

test('truncated archives are BAD_FILE wherever they are cut', () => {
  const { dir, cleanup } = tempDir();
  try {
    const whole = readFileSync(fixture('basic.pt'));
    const path = join(dir, 'cut.pt');
    for (const keep of [0, 3, 100, Math.floor(whole.length / 2), whole.length - 30, whole.length - 1]) {
      writeFileSync(path, whole.subarray(0, keep));
      expectCode(() => TorchStateDict.open(path).close(), 'BAD_FILE');
    }
  } finally {
    cleanup();
  }
});

test('the unpickler refuses unknown opcodes and unknown globals, and reads plain data', () => {
  const none = { label: 'test', findGlobal: () => undefined };
  // PROTO 2, EMPTY_DICT, MARK, 'a' BININT1 1, 'b' NEWTRUE, SETITEMS, STOP
  const ok = unpickle(
    Uint8Array.from([0x80, 2, 0x7d, 0x28, 0x8c, 1, 0x61, 0x4b, 1, 0x8c, 1, 0x62, 0x88, 0x75, 0x2e]),
    none,
  );
  assert.deepEqual(
    ok,
    new Map<unknown, unknown>([
      ['a', 1],
      ['b', true],
    ]),
  );
  expectCode(() => unpickle(Buffer.from('cos\nsystem\n.', 'latin1'), none), 'UNSAFE_CHECKPOINT', 'os.system');
  expectCode(() => unpickle(Uint8Array.from([0x80, 2, 0x82, 1, 0x2e]), none), 'UNSAFE_CHECKPOINT', 'EXT1');
  expectCode(() => unpickle(Uint8Array.from([0x80, 2, 0x4e]), none), 'BAD_FILE', 'corrupt pickle');
});
