"""PyTorch side of bench/vs-torch.ts (development time only): a worker reading one JSON command per
line on stdin and answering one JSON line on stdout.

Commands: hello {threads} -> versions; sae_load {dir, dIn, dSae, k} reads W_enc [dIn, dSae], b_enc,
W_dec [dSae, dIn], b_dec as raw float32 files; sae_encode {x, n, reconstruct, out?, iters} runs
topk(relu(x W_enc + b_enc), k) (and x_hat = sum_j v_j W_dec[i_j] + b_dec when reconstruct), writing
the outputs as raw files under `out` when given, and answers the mean seconds per call over iters.
Without torch it answers hello with {"error": ...} so the runner can skip cleanly.
"""
import json
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


def encode(x, reconstruct):
    v, i = torch.topk(torch.relu(x @ state['W_enc'] + state['b_enc']), state['k'])
    if not reconstruct:
        return v, i, None
    x_hat = (v.unsqueeze(1) @ state['W_dec'][i]).squeeze(1) + state['b_dec']
    return v, i, x_hat


def handle(cmd):
    op = cmd['op']
    if op == 'hello':
        if torch is None:
            return {'error': TORCH_ERROR}
        torch.set_num_threads(cmd['threads'])
        return {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'numpy': np.__version__}
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
    if op == 'sae_encode':
        x = load(cmd['x'], (cmd['n'], state['dIn']))
        with torch.no_grad():
            v, i, x_hat = encode(x, cmd['reconstruct'])
            if cmd.get('out'):
                v.numpy().tofile(f"{cmd['out']}/values.bin")
                i.to(torch.int32).numpy().tofile(f"{cmd['out']}/indices.bin")
                if x_hat is not None:
                    x_hat.numpy().tofile(f"{cmd['out']}/x_hat.bin")
            start = time.perf_counter()
            for _ in range(cmd['iters']):
                encode(x, cmd['reconstruct'])
            return {'seconds': (time.perf_counter() - start) / max(1, cmd['iters'])}
    return {'error': f'unknown op {op}'}


for line in sys.stdin:
    try:
        reply = handle(json.loads(line))
    except Exception as e:  # answered, so the runner reports it instead of hanging
        reply = {'error': repr(e)}
    print(json.dumps(reply), flush=True)
