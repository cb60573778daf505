/**
 * onnxruntime-node sessions for every ONNX graph the atlas runs (models and SAE encoders), with the
 * execution provider chosen by ATLAS_DEVICE: `cpu`; `cuda` (fail fast when it cannot be used); `auto`
 * (try CUDA, fall back to CPU with one log line saying why).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { DeviceSetting } from '../../config.js';
import { AtlasError } from '../../errors.js';

export type ExecutionProvider = 'cuda' | 'cpu';

export interface SessionSettings {
  device: DeviceSetting;
  /** Intra-op threads; 0 lets onnxruntime decide. */
  threads: number;
}

export interface AtlasSession {
  session: ort.InferenceSession;
  provider: ExecutionProvider;
}

export const CUDA_INSTALL_HINT =
  "install onnxruntime-node's CUDA build with `npm_config_onnxruntime_node_install=cuda12 npm rebuild " +
  'onnxruntime-node` ' +
  '(it downloads the CUDA provider from NuGet; CUDA 12 and cuDNN 9 must be installed), or set ATLAS_DEVICE=cpu';

/** Why CUDA cannot be used in this process, once known (null: it works; undefined: not tried yet). */
let cudaProblem: string | null | undefined;
let loggedFallback = false;

/** The CUDA provider library that onnxruntime-node's installer adds beside its binding on Linux. */
function cudaLibraryPath(): string | null {
  if (process.platform !== 'linux') return null;
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  return join(dirname(entry), '..', 'bin', 'napi-v6', 'linux', process.arch, 'libonnxruntime_providers_cuda.so');
}

/**
 * The options of every session. Thread spinning is off: a spinning pool keeps its cores busy for a
 * while after each run, cores that the event loop, the HTTP layer and the SAE encoder's session need
 * between runs. Chosen by bench/encode-path.ts (figures in its header).
 */
export function sessionOptions(
  settings: SessionSettings,
  provider: ExecutionProvider,
): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    graphOptimizationLevel: 'all',
    // Warnings (unused initializers, CPU fallback of single nodes) are not actionable for users.
    logSeverityLevel: 3,
    ...(settings.threads > 0 ? { intraOpNumThreads: settings.threads } : {}),
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
}

function open(model: string | Uint8Array, opts: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, opts)
    : ort.InferenceSession.create(model, opts);
}

/**
 * Creates a session for ONNX bytes or a path (use a path when the model has external data, which is
 * resolved relative to it). Invalid models are BAD_FILE; an unusable CUDA under `cuda` is
 * DEVICE_UNAVAILABLE.
 */
export async function createSession(model: string | Uint8Array, settings: SessionSettings): Promise<AtlasSession> {
  const what = typeof model === 'string' ? model : 'the ONNX model';
  const cpu = async (): Promise<AtlasSession> => {
    try {
      return { session: await open(model, sessionOptions(settings, 'cpu')), provider: 'cpu' };
    } catch (e) {
      throw new AtlasError('BAD_FILE', `onnxruntime cannot load ${what}: ${(e as Error).message}`);
    }
  };
  if (settings.device === 'cpu') return cpu();

  if (cudaProblem === undefined) {
    const lib = cudaLibraryPath();
    if (lib && !existsSync(lib)) cudaProblem = `the CUDA execution provider is not installed (${lib} is missing)`;
  }
  if (cudaProblem === undefined || cudaProblem === null) {
    try {
      const session = await open(model, sessionOptions(settings, 'cuda'));
      cudaProblem = null;
      return { session, provider: 'cuda' };
    } catch (e) {
      const message = (e as Error).message;
      // Only provider failures mean "no CUDA"; anything else is a problem with the model itself.
      if (!/cuda|provider|shared librar|\.so/i.test(message))
        throw new AtlasError('BAD_FILE', `onnxruntime cannot load ${what}: ${message}`);
      cudaProblem = `onnxruntime could not start the CUDA execution provider: ${message}`;
    }
  }
  if (settings.device === 'cuda')
    throw new AtlasError('DEVICE_UNAVAILABLE', `ATLAS_DEVICE=cuda but ${cudaProblem}. To fix: ${CUDA_INSTALL_HINT}.`);
  if (!loggedFallback) {
    loggedFallback = true;
    process.stderr.write(`atlas: ATLAS_DEVICE=auto: ${cudaProblem}; using CPU.\n`);
  }
  return cpu();
}
