"""PyTorch side of bench/vs-torch.ts (development time only): a worker reading one JSON command per
line on stdin and answering one JSON line on stdout. Timed commands answer `times`, seconds per call.

Commands (paths name raw float32 files or Hugging Face folders written by the runner):
- hello {threads} -> versions and the BLAS library torch has loaded.
- sae_load {dir, dIn, dSae, k}: W_enc [dIn, dSae], b_enc, W_dec [dSae, dIn], b_dec as raw files;
  sae_encode {x, n, reconstruct, out?, iters}: topk(relu(x W_enc + b_enc), k) (and
  x_hat = sum_j v_j W_dec[i_j] + b_dec when reconstruct).
- gpt2_load {name, dir, sae?}: a GPT-2 checkpoint (config.json, model.safetensors) into
  tools/demo/gpt2.py's module, and optionally a SAELens TopK SAE folder (sae_weights.safetensors, cfg.json);
  gpt2_forward {name, tokens, layer, out?, iters}: blocks.<layer>.hook_resid_post of one sequence
  (embeddings and blocks 0..layer only, as a hook cut there); gpt2_encode {name, tokens, layer, out?, iters}:
  that hook through the SAE, topk(relu((x - b_dec) W_enc + b_enc), k).
- nearest_load {name, path, n, d}: decoder rows [n, d], normalized once; nearest {name, q, m, k, out?, iters}:
  topk(normalize(W_dec) @ q_j, k), one query per call as a request makes, cycling through the m queries.
Other modules named on the command line add their own OPS (a dict op -> handler(cmd, state)).
Without torch, hello answers {"error": ...} so the runner can skip cleanly.
"""
import ctypes
import importlib.util
import json
import os
import sys
import time

import numpy as np

try:
    import torch
except ImportError as e:  # the runner prints this and skips
    torch = None
    TORCH_ERROR = str(e)

state = {}


def load(path, shape):
    return torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(shape))


def read_safetensors(path):
    """{name: float32 tensor}: an 8-byte little-endian header length, a JSON header, the raw data."""
    with open(path, 'rb') as f:
        size = int.from_bytes(f.read(8), 'little')
        header = json.loads(f.read(size))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == '__metadata__':
            continue
        if t['dtype'] != 'F32':
            raise ValueError(f'{path}: {name} is {t["dtype"]}; this worker reads F32 only')
        a, b = t['data_offsets']
        out[name] = torch.from_numpy(np.frombuffer(data, np.float32, (b - a) // 4, a).reshape(t['shape']).copy())
    return out


def timed(fn, iters):
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {'times': times}


def save(out, **arrays):
    for name, a in arrays.items():
        a.contiguous().numpy().tofile(f'{out}/{name}.bin')


def sae_encode(x, reconstruct):
    v, i = torch.topk(torch.relu(x @ state['W_enc'] + state['b_enc']), state['k'])
    if not reconstruct:
        return v, i, None
    x_hat = (v.unsqueeze(1) @ state['W_dec'][i]).squeeze(1) + state['b_dec']
    return v, i, x_hat


def gpt2_load(cmd):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tools', 'demo'))
    from gpt2 import GPT2

    with open(f"{cmd['dir']}/config.json") as f:
        c = json.load(f)
    stored = read_safetensors(f"{cmd['dir']}/model.safetensors")
    weights = {k.removeprefix('transformer.'): v for k, v in stored.items()}
    model = GPT2(c['vocab_size'], c['n_positions'], c['n_embd'], c['n_layer'], c['n_head'], c['layer_norm_epsilon'])
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in weights]
    if missing:
        raise ValueError(f'checkpoint lacks {missing[:3]}')
    model.load_state_dict({k: weights[k] for k in wanted})
    model.eval()
    entry = {'model': model}
    if cmd.get('sae'):
        w = read_safetensors(f"{cmd['sae']}/sae_weights.safetensors")
        with open(f"{cmd['sae']}/cfg.json") as f:
            cfg = json.load(f)
        entry['sae'] = {**w, 'k': cfg['k'], 'b_dec_in': bool(cfg.get('apply_b_dec_to_input', False))}
    state[cmd['name']] = entry


def hook(model, tokens, layer):
    idx = torch.tensor([tokens])
    x = model.wte(idx) + model.wpe(torch.arange(idx.shape[1]))
    for block in model.h[: layer + 1]:
        x = block(x)
    return x[0]


def gpt2_encode(entry, tokens, layer):
    s = entry['sae']
    x = hook(entry['model'], tokens, layer)
    if s['b_dec_in']:
        x = x - s['b_dec']
    return torch.topk(torch.relu(x @ s['W_enc'] + s['b_enc']), s['k'])


def handle(cmd):
    op = cmd['op']
    if op == 'hello':
        if torch is None:
            return {'error': TORCH_ERROR}
        torch.set_num_threads(cmd['threads'])
        torch.ones(64, 64) @ torch.ones(64, 64)  # loads the BLAS library, so the process map names it
        with open('/proc/self/maps') as f:
            blas = sorted({l.split()[-1] for l in f if 'blas' in l.rsplit('/', 1)[-1].lower()})
        # OpenBLAS keeps its own thread count (OPENBLAS_NUM_THREADS, set by the runner), apart from torch's.
        blas_threads = None
        for lib in blas:
            try:
                blas_threads = ctypes.CDLL(lib).openblas_get_num_threads()
                break
            except (OSError, AttributeError):
                pass
        return {
            'torch': torch.__version__,
            'threads': torch.get_num_threads(),
            'numpy': np.__version__,
            'blas': ', '.join(os.path.realpath(b) for b in blas) or 'none found in the process map',
            'blas_threads': blas_threads,
        }
    if op in OPS:
        return OPS[op](cmd, state) or {'ok': True}
    if op == 'sae_load':
        d, n, s = cmd['dir'], cmd['dIn'], cmd['dSae']
        state.update(
            W_enc=load(f'{d}/W_enc.bin', (n, s)),
            b_enc=load(f'{d}/b_enc.bin', (s,)),
            W_dec=load(f'{d}/W_dec.bin', (s, n)),
            b_dec=load(f'{d}/b_dec.bin', (n,)),
            k=cmd['k'],
            dIn=n,
        )
        return {'ok': True}
    with torch.no_grad():
        if op == 'sae_encode':
            x = load(cmd['x'], (cmd['n'], state['dIn']))
            if cmd.get('out'):
                v, i, x_hat = sae_encode(x, cmd['reconstruct'])
                save(cmd['out'], values=v, indices=i.to(torch.int32))
                if x_hat is not None:
                    save(cmd['out'], x_hat=x_hat)
            return timed(lambda: sae_encode(x, cmd['reconstruct']), cmd['iters'])
        if op == 'gpt2_load':
            gpt2_load(cmd)
            return {'ok': True}
        if op in ('gpt2_forward', 'gpt2_encode'):
            entry, tokens, layer = state[cmd['name']], cmd['tokens'], cmd['layer']
            if op == 'gpt2_forward':
                run = lambda: hook(entry['model'], tokens, layer)
            else:
                run = lambda: gpt2_encode(entry, tokens, layer)
            if cmd.get('out'):
                if op == 'gpt2_forward':
                    save(cmd['out'], hook=run())
                else:
                    v, i = run()
                    save(cmd['out'], values=v, indices=i.to(torch.int32))
            return timed(run, cmd['iters'])
        if op == 'nearest_load':
            w = load(cmd['path'], (cmd['n'], cmd['d']))
            state[cmd['name']] = torch.nn.functional.normalize(w, dim=1)
            return {'ok': True}
        if op == 'nearest':
            w = state[cmd['name']]
            q = load(cmd['q'], (cmd['m'], w.shape[1]))
            if cmd.get('out'):
                v, i = torch.topk(w @ q.T, cmd['k'], dim=0)
                save(cmd['out'], cosines=v.T, indices=i.T.to(torch.int32))
            calls = iter(range(cmd['iters']))
            return timed(lambda: torch.topk(w @ q[next(calls) % cmd['m']], cmd['k']), cmd['iters'])
    return {'error': f'unknown op {op}'}


OPS = {}
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    OPS.update(module.OPS)

for line in sys.stdin:
    try:
        reply = handle(json.loads(line))
    except Exception as e:  # answered, so the runner reports it instead of hanging
        reply = {'error': repr(e)}
    print(json.dumps(reply), flush=True)
