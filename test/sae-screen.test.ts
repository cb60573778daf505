/**
 * The TopK encoder's 8-bit screen with an exact re-score (src/engine/sae/architectures/topk-screen.ts) against
 * the float64 reference topk(relu(x W_enc + b_enc)) (test/reference/sae.ts): random and heavy-tailed weights,
 * clustered inputs, duplicate columns, rows the screen cannot prove (encoded densely instead), k = 1 and
 * k = dSae, n = 0, 1 and many, every normalization; and the bound itself, feature by feature, against float64.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SaeEncoder, SCREEN_MAX_ROWS, SCREEN_WIDE_ROWS } from '../src/engine/sae/encoder.js';
import {
  NORMALIZATION_KINDS,
  type NormalizationKind,
  type SaeConfig,
  type SaeParams,
} from '../src/engine/sae/types.js';
import { screenWidth } from '../src/engine/sae/architectures/topk-screen.js';
import { exactInt8Weights, type Int8Weights } from '../src/engine/runtime/int8-product.js';
import {
  MS_DOMAIN,
  floatTensor,
  int8Tensor,
  node,
  serializeModel,
  uint8Tensor,
  valueInfo,
} from '../src/engine/onnx/proto.js';
import * as ort from 'onnxruntime-node';
import { refForwardOne, refTopK } from './reference/sae.js';
import { randomSaeParams, randomVectors } from './helpers/sae-fixtures.js';
import { clusteredRows, normal, rng } from './helpers/rng.js';

const D_IN = 64;
const D_SAE = 1024;
const TOL = 1e-5;

function config(k: number, kind: NormalizationKind = 'none', applyBDecToInput = false): SaeConfig {
  return {
    architecture: 'topk',
    dIn: D_IN,
    dSae: D_SAE,
    k,
    hookName: null,
    modelName: null,
    prependBos: null,
    applyBDecToInput,
    normalization: { kind, scalingFactor: kind === 'expected_average_only_in' ? 0.37 : null },
    sourceFormat: 'saelens',
    dtype: 'float32',
    extra: {},
  };
}

/** Asserts an encoding equals the float64 reference: values, L0, and indices up to near-ties. */
function checkEncoding(cfg: SaeConfig, params: SaeParams, x: Float32Array, n: number, topK: number, label: string) {
  return async (enc: SaeEncoder) => {
    for (const reconstruct of [false, true]) {
      const e = await enc.encode(x, n, topK, { reconstruct });
      assert.equal(e.width, topK);
      assert.equal(e.indices.length, n * topK);
      for (let r = 0; r < n; r++) {
        const ref = refForwardOne(cfg, params, Array.from(x.subarray(r * cfg.dIn, (r + 1) * cfg.dIn)));
        const top = refTopK(ref.codes, topK);
        const what = `${label} reconstruct=${reconstruct} row ${r}`;
        assert.equal(e.l0[r], ref.codes.filter((v) => v > 0).length, `${what} l0`);
        for (let t = 0; t < topK; t++) {
          const v = e.values[r * topK + t];
          const tol = TOL * Math.max(1, Math.abs(top.values[t]));
          assert.ok(Math.abs(v - top.values[t]) <= tol, `${what} slot ${t}: ${v} vs ${top.values[t]}`);
          if (top.values[t] > 0) {
            const j = e.indices[r * topK + t];
            assert.ok(Math.abs(ref.codes[j] - v) <= tol, `${what} slot ${t}: feature ${j} has ${ref.codes[j]}`);
          }
        }
      }
    }
  };
}

async function withEncoder(cfg: SaeConfig, params: SaeParams, body: (enc: SaeEncoder) => Promise<void>) {
  const enc = await SaeEncoder.create(cfg, params, { session: { device: 'cpu', threads: 1 }, screen: 'always' });
  try {
    await body(enc);
  } finally {
    await enc.close();
  }
}

/** The encoder input as the graph sees it when there is no normalization: x, or x − b_dec in float32. */
function encoderInput(cfg: SaeConfig, params: SaeParams, x: Float32Array): Float32Array {
  if (!cfg.applyBDecToInput) return x;
  return x.map((v, i) => Math.fround(v - params.b_dec[i % cfg.dIn]));
}

/** pre = x W_enc + b_enc in float64, [n, dSae]. */
function preActivations(cfg: SaeConfig, params: SaeParams, x: Float32Array, n: number): Float64Array {
  const pre = new Float64Array(n * cfg.dSae);
  for (let r = 0; r < n; r++)
    for (let j = 0; j < cfg.dSae; j++) {
      let s = params.b_enc![j];
      for (let i = 0; i < cfg.dIn; i++) s += x[r * cfg.dIn + i] * params.W_enc[i * cfg.dSae + j];
      pre[r * cfg.dSae + j] = s;
    }
  return pre;
}

/** Heavy-tailed weights: every column scaled by |Cauchy|-like factors, a few rows of W_enc much larger. */
function heavyTailedParams(seed: number): SaeParams {
  const p = randomSaeParams('topk', D_IN, D_SAE, seed);
  const rand = rng(seed + 5);
  const colScale = Float32Array.from({ length: D_SAE }, () => Math.min(50, Math.abs(normal(rand) / normal(rand))));
  for (let i = 0; i < D_IN; i++)
    for (let j = 0; j < D_SAE; j++) p.W_enc[i * D_SAE + j] *= colScale[j] * (i % 17 === 0 ? 8 : 1);
  return p;
}

test('screened encode = float64 reference: random weights, n = 0, 1, many (one run, several runs)', async () => {
  const cfg = config(8);
  const params = randomSaeParams('topk', D_IN, D_SAE, 3);
  await withEncoder(cfg, params, async (enc) => {
    assert.ok(enc.screened, 'the screen is in use for this dictionary');
    const empty = await enc.encode(new Float32Array(0), 0, 8, { reconstruct: true });
    assert.deepEqual([empty.indices.length, empty.values.length, empty.l0.length], [0, 0, 0]);
    // An all-zero batch: its quantization grid has no width, and b_enc alone ranks the features.
    await checkEncoding(cfg, params, new Float32Array(2 * D_IN), 2, 8, 'zeros')(enc);
    assert.equal(enc.maxScreenRows, Infinity, "'always' screens every batch");
    // SCREEN_WIDE_ROWS + 3 rows: two screened runs, the second of 3 rows, their codes joined in order.
    for (const n of [1, 7, SCREEN_MAX_ROWS, SCREEN_MAX_ROWS + 3, SCREEN_WIDE_ROWS + 3]) {
      const x = randomVectors(n, D_IN, 40 + n);
      await checkEncoding(cfg, params, x, n, 8, `n=${n}`)(enc);
      // topK below and above k: cut and padded with empty slots.
      await checkEncoding(cfg, params, x, n, 3, `n=${n} topK=3`)(enc);
      await checkEncoding(cfg, params, x, n, 20, `n=${n} topK=20`)(enc);
      // allActive at topK 3 widens to k, every active code of a TopK row.
      const all = await enc.encode(x, n, 3, { allActive: true });
      const full = await enc.encode(x, n, 8);
      assert.equal(all.width, 8);
      assert.deepEqual([all.indices, all.values, all.l0], [full.indices, full.values, full.l0]);
    }
    // These rows go through the screen itself: its proof v_K' + 2B < v_k holds for each.
    const x = randomVectors(7, D_IN, 47);
    const { pre, bound } = await enc.screenScores(x, 7);
    for (let r = 0; r < 7; r++) {
      const row = Array.from(pre.subarray(r * D_SAE, (r + 1) * D_SAE)).sort((a, b) => b - a);
      assert.ok(row[screenWidth(8) - 1] + 2 * bound[r] < row[7], `row ${r} is proved`);
    }
  });
});

test('screened encode = reference: heavy-tailed weights, clustered and heavy-tailed x, normalizations', async () => {
  const params = heavyTailedParams(9);
  const clustered = clusteredRows(12, 12, D_IN, 3, 0.2).map((v) => 20 * v);
  const rand = rng(31);
  const heavy = Float32Array.from({ length: 12 * D_IN }, () => normal(rand) ** 3);
  for (const kind of NORMALIZATION_KINDS) {
    for (const applyBDec of [false, true]) {
      const cfg = config(16, kind, applyBDec);
      await withEncoder(cfg, params, async (enc) => {
        assert.ok(enc.screened);
        await checkEncoding(cfg, params, clustered, 12, 16, `${kind} b_dec=${applyBDec} clustered`)(enc);
        await checkEncoding(cfg, params, heavy, 12, 16, `${kind} b_dec=${applyBDec} heavy`)(enc);
      });
    }
  }
});

test('duplicate columns: equal codes keep the lower feature first, as the dense TopK does', async () => {
  const cfg = config(8);
  const params = randomSaeParams('topk', D_IN, D_SAE, 5);
  // Columns 700..704 copy column 3, with a bias that puts them in every row's top k.
  for (const j of [3, 700, 701, 702, 703, 704]) {
    for (let i = 0; i < D_IN; i++) params.W_enc[i * D_SAE + j] = params.W_enc[i * D_SAE + 3];
    params.b_enc![j] = 40;
  }
  const n = 5;
  const x = randomVectors(n, D_IN, 77);
  await withEncoder(cfg, params, async (enc) => {
    assert.ok(enc.screened);
    await checkEncoding(cfg, params, x, n, 8, 'duplicates')(enc);
    const e = await enc.encode(x, n, 8);
    for (let r = 0; r < n; r++)
      assert.deepEqual(Array.from(e.indices.subarray(r * 8, r * 8 + 6)), [3, 700, 701, 702, 703, 704], `row ${r}`);
  });
});

test('rows the screen cannot prove are encoded densely, exactly', async () => {
  const k = 4;
  const cfg = config(k);
  const params = randomSaeParams('topk', D_IN, D_SAE, 6);
  // More than K' copies of one column on top: its K'-th screen score equals its k-th, so no bound can separate them.
  const copies = screenWidth(k) + 10;
  for (let c = 0; c < copies; c++) {
    const j = 100 + 2 * c;
    for (let i = 0; i < D_IN; i++) params.W_enc[i * D_SAE + j] = params.W_enc[i * D_SAE + 1];
    params.b_enc![j] = params.b_enc![1] + 30;
  }
  const n = 6;
  const x = randomVectors(n, D_IN, 78);
  // The last rows are zero: b_enc alone then decides, and the copies lead.
  x.fill(0, 4 * D_IN);
  await withEncoder(cfg, params, async (enc) => {
    assert.ok(enc.screened);
    const { pre, bound } = await enc.screenScores(x, n);
    for (let r = 0; r < n; r++) {
      const row = Array.from(pre.subarray(r * D_SAE, (r + 1) * D_SAE)).sort((a, b) => b - a);
      // The proof would need row[K' − 1] + 2B < row[k − 1]; these rows have equal values there.
      assert.ok(row[screenWidth(k) - 1] + 2 * bound[r] >= row[k - 1], `row ${r} cannot be proved`);
    }
    await checkEncoding(cfg, params, x, n, k, 'unprovable')(enc);
    const e = await enc.encode(x, n, k);
    for (let r = 0; r < n; r++)
      assert.deepEqual(Array.from(e.indices.subarray(r * k, (r + 1) * k)), [100, 102, 104, 106]);
  });
});

test('k = 1 takes the screen; k = dSae (every feature) takes the dense graph', async () => {
  const params = randomSaeParams('topk', D_IN, D_SAE, 8);
  const x = randomVectors(9, D_IN, 79);
  await withEncoder(config(1), params, async (enc) => {
    assert.ok(enc.screened);
    await checkEncoding(config(1), params, x, 9, 1, 'k=1')(enc);
    await checkEncoding(config(1), params, x, 9, 5, 'k=1 topK=5')(enc);
  });
  await withEncoder(config(D_SAE), params, async (enc) => {
    assert.equal(enc.screened, false);
    await checkEncoding(config(D_SAE), params, x.subarray(0, 3 * D_IN), 3, 40, 'k=dSae')(enc);
  });
});

test('the screen bound holds for every feature of every row, against float64', async () => {
  for (const [label, params, applyBDec] of [
    ['random', randomSaeParams('topk', D_IN, D_SAE, 10), false],
    ['heavy-tailed', heavyTailedParams(11), true],
  ] as const) {
    const cfg = config(8, 'none', applyBDec);
    const n = 24;
    const rand = rng(50);
    const x = Float32Array.from({ length: n * D_IN }, (_, i) => (i < D_IN ? 0 : normal(rand) * (1 + (i % 5) ** 3)));
    await withEncoder(cfg, params, async (enc) => {
      const { pre, bound } = await enc.screenScores(x, n);
      const exact = preActivations(cfg, params, encoderInput(cfg, params, x), n);
      for (let r = 0; r < n; r++) {
        assert.ok(bound[r] > 0 && Number.isFinite(bound[r]), `${label} row ${r} bound ${bound[r]}`);
        let worst = 0;
        for (let j = 0; j < D_SAE; j++) worst = Math.max(worst, Math.abs(exact[r * D_SAE + j] - pre[r * D_SAE + j]));
        assert.ok(worst <= bound[r], `${label} row ${r}: screen error ${worst} over its bound ${bound[r]}`);
        // Not vacuous: the bound is within a small factor of the screen's real error on nonzero rows.
        if (r > 0) assert.ok(bound[r] < 100 * worst, `${label} row ${r}: bound ${bound[r]}, error ${worst}`);
      }
    });
  }
});

test('auto keeps the screen for the batch sizes create() timed it faster (or none); never builds none', async () => {
  const cfg = config(8);
  const params = randomSaeParams('topk', D_IN, D_SAE, 5);
  const x = randomVectors(SCREEN_WIDE_ROWS + 3, D_IN, 77);
  for (const screen of ['auto', 'never'] as const) {
    const enc = await SaeEncoder.create(cfg, params, { session: { device: 'cpu', threads: 1 }, screen });
    try {
      const rows = enc.maxScreenRows;
      if (screen === 'never') assert.equal(rows, 0);
      // A power of two up to the cap, 0 with the screen released, or every batch where it paid on the wide one too.
      assert.ok([0, 1, 2, 4, 8, 16, 32, Infinity].includes(rows), `maxScreenRows ${rows}`);
      assert.equal(enc.screened, rows > 0);
      const dense = 4 * (2 * D_IN * D_SAE + D_SAE + 2 * D_IN);
      assert.equal(enc.residentBytes, rows > 0 ? dense + 5 * D_IN * D_SAE + 9 * D_SAE : dense);
      for (const n of [1, SCREEN_MAX_ROWS, SCREEN_WIDE_ROWS + 3])
        await checkEncoding(cfg, params, x.subarray(0, n * D_IN), n, 8, `${screen} n=${n}`)(enc);
    } finally {
      await enc.close();
    }
  }
});

test('auto counts the re-encode of unproved rows: a screen that proves nothing is released', async () => {
  // Large enough that the screen graph alone beats the dense one on small batches; but K' + 10 copies of one
  // column lead every row (b_enc + 30), so no row is proved and every screened encode runs the dense graph too.
  const [dIn, dSae, k] = [512, 8192, 8];
  const cfg = { ...config(k), dIn, dSae };
  const params = randomSaeParams('topk', dIn, dSae, 12);
  for (let c = 0; c < screenWidth(k) + 10; c++) {
    const j = 100 + c;
    for (let i = 0; i < dIn; i++) params.W_enc[i * dSae + j] = params.W_enc[i * dSae + 1];
    params.b_enc![j] = params.b_enc![1] + 30;
  }
  const enc = await SaeEncoder.create(cfg, params, { session: { device: 'cpu', threads: 1 }, screen: 'auto' });
  try {
    assert.equal(enc.maxScreenRows, 0);
    assert.equal(enc.screened, false);
  } finally {
    await enc.close();
  }
});

test('8-bit screen weights are summed exactly; int8 is passed over only where it saturates', async () => {
  const weights = await exactInt8Weights();
  assert.ok(weights !== null, 'one of int8 and uint8 is exact on x86-64 and ARM64');
  const [rows, depth, cols] = [4, 64, 32];
  const rand = rng(91);
  // x in {0, 1}, row 0 all ones: DynamicQuantizeLinear puts 1 on code 255, 0 on 0 (scale 1/255, zero point 0).
  const x = Float32Array.from({ length: rows * depth }, (_, i) => (i < depth || rand() < 0.5 ? 1 : 0));
  // Codes in [−127, 127], half at ±127; column 0 all +127, column 1 all −127: with row 0 every adjacent pair of
  // products there is ±2·255·127, past int16.
  const codes = Int8Array.from({ length: depth * cols }, (_, i) =>
    i % cols < 2 ? (i % cols === 0 ? 127 : -127) : (rand() < 0.5 ? -1 : 1) * (rand() < 0.5 ? 127 : rand() * 127),
  );
  const productIsExact = async (type: Int8Weights) => {
    const stored =
      type === 'int8'
        ? [int8Tensor('w', [depth, cols], codes)]
        : [
            uint8Tensor(
              'w',
              [depth, cols],
              Uint8Array.from(codes, (c) => c + 128),
            ),
            uint8Tensor('wz', [cols], new Uint8Array(cols).fill(128)),
          ];
    const session = await ort.InferenceSession.create(
      serializeModel({
        name: 'int8_product',
        nodes: [
          node('DynamicQuantizeLinear', ['x'], ['xq', 'xs', 'xz']),
          {
            ...node('MatMulIntegerToFloat', ['xq', 'w', 'xs', 'ws', 'xz', type === 'int8' ? '' : 'wz'], ['y']),
            domain: MS_DOMAIN,
          },
        ],
        initializers: [...stored, floatTensor('ws', [cols], new Float32Array(cols).fill(1))],
        inputs: [valueInfo('x', 'float', [rows, depth])],
        outputs: [valueInfo('y', 'float', [rows, cols])],
      }),
      { executionProviders: ['cpu'] },
    );
    try {
      const y = (await session.run({ x: new ort.Tensor('float32', x, [rows, depth]) })).y.data as Float32Array;
      let exact = true;
      for (let r = 0; r < rows; r++)
        for (let c = 0; c < cols; c++) {
          let want = 0;
          for (let i = 0; i < depth; i++) want += x[r * depth + i] * codes[i * cols + c];
          if (Math.abs(y[r * cols + c] - want) > 1e-4 * Math.max(1, Math.abs(want))) exact = false;
        }
      return exact;
    } finally {
      await session.release();
    }
  };
  assert.ok(await productIsExact(weights!), `${weights} codes are summed exactly`);
  // uint8 only where int8 is not exact here.
  assert.equal(await productIsExact('int8'), weights === 'int8');
});
