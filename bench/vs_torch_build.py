"""PyTorch side of bench/vs-torch-build.ts (development time only): the dashboard statistics of `atlas build`
computed by a plain torch loop. Its OPS plug into bench/vs_torch.py's worker (named on its command line);
run alone it is such a worker itself: one JSON command per line on stdin, one JSON answer per line on stdout.

Commands:
- hello {threads} -> versions (or {"error"} without torch, so the runner skips cleanly; standalone only);
- build_load {model, sae, layer}: the GPT-2 checkpoint (Hugging Face layout, tools/demo/gpt2.py's modules) cut
  after block `layer`, and the SAELens dictionary's W_enc [d, F], b_enc, W_dec [F, d], b_dec;
- build_run {ids, lengths, batch, top, lens, out?}: contexts (int32 [contexts, T], BOS first, right-padded;
  lengths int32 [contexts]) in batches through the model to blocks.{layer}.hook_resid_post; for the
  non-BOS rows x: v, i = topk(relu(x W_enc + b_enc), k) (the dictionary's formula with no input
  normalization and no b_dec subtracted), x_hat = sum_j v_j W_dec[i_j] + b_dec; per feature the firing
  count, sum, max and a histogram on the atlas's log grid (4 bins per octave from 2^-20), the top `top`
  contexts by the feature's largest activation in them; dictionary-wide l0, normalized MSE against the
  corpus mean and the dead fraction; with `lens`, the logit lens (decoder rows times ln_f.weight times
  W_U, 10 highest and lowest per feature). Answers the seconds of the corpus pass and of the logit lens
  and the dictionary statistics; writes count.bin, max.bin (float32 [F]) under `out` when given.
Not computed, which the atlas does: quantile-band examples, the per-token values of each kept example,
token texts, and storing anything (no database).
"""
import json
import math
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools', 'demo'))
import st  # noqa: E402

try:
    import torch
    from gpt2 import GPT2
except ImportError as e:  # the runner prints this and skips
    torch = None
    TORCH_ERROR = str(e)

warnings.filterwarnings('ignore', message='scatter_reduce')  # beta in torch 1.13, stable since
MIN_EXP, BINS_PER_OCTAVE, BINS = -20, 4, 160
LOGIT_TOKENS = 10
def load(cmd, state):
    cfg = json.load(open(os.path.join(cmd['model'], 'config.json')))
    layer = cmd['layer']
    model = GPT2(
        cfg['vocab_size'], cfg['n_positions'], cfg['n_embd'], layer + 1, cfg['n_head'], cfg['layer_norm_epsilon']
    )
    weights = st.read(os.path.join(cmd['model'], 'model.safetensors'))
    keep = {}
    for name, w in weights.items():
        name = name.removeprefix('transformer.')
        if not name.startswith('h.') or int(name.split('.')[1]) <= layer:  # blocks after the hook are not run
            keep[name] = torch.from_numpy(w.copy())
    model.load_state_dict(keep)
    model.eval()
    sae = st.read(os.path.join(cmd['sae'], 'sae_weights.safetensors'))
    sae = {k: torch.from_numpy(v.copy()) for k, v in sae.items()}
    sae_cfg = json.load(open(os.path.join(cmd['sae'], 'cfg.json')))
    state.update(model=model, sae=sae, k=sae_cfg['k'])
    return {'ok': True}


def hook(state, ids):
    m = state['model']
    x = m.wte(ids) + m.wpe(torch.arange(ids.shape[1]))
    for block in m.h:
        x = block(x)
    return x


def build(cmd, state):
    ids = torch.from_numpy(np.fromfile(cmd['ids'], dtype=np.int32).astype(np.int64))
    lengths = np.fromfile(cmd['lengths'], dtype=np.int32)
    ids = ids.view(len(lengths), -1)
    W_enc, b_enc, W_dec, b_dec = (state['sae'][n] for n in ('W_enc', 'b_enc', 'W_dec', 'b_dec'))
    F, d, k, top, batch = W_enc.shape[1], W_enc.shape[0], state['k'], cmd['top'], cmd['batch']
    count = torch.zeros(F, dtype=torch.float64)
    total = torch.zeros(F, dtype=torch.float64)
    vmax = torch.zeros(F)
    hist = torch.zeros(F * BINS, dtype=torch.float64)
    top_v = torch.full((F, top), -1.0)
    top_ctx = torch.full((F, top), -1, dtype=torch.int64)
    tokens, active, resid = 0, 0, 0.0
    x_sum = torch.zeros(d, dtype=torch.float64)
    x_sq = torch.zeros(d, dtype=torch.float64)
    start = time.perf_counter()
    with torch.no_grad():
        for b0 in range(0, len(lengths), batch):
            lens = torch.from_numpy(lengths[b0:b0 + batch].astype(np.int64))
            T = int(lens.max())
            h = hook(state, ids[b0:b0 + len(lens), :T])
            mask = torch.arange(1, T)[None, :] < lens[:, None]  # non-BOS positions inside the context
            x = h[:, 1:][mask]
            ctx = torch.arange(b0, b0 + len(lens))[:, None].expand(-1, T - 1)[mask]
            v, i = torch.topk(torch.relu(x @ W_enc + b_enc), k)
            x_hat = (v.unsqueeze(1) @ W_dec[i]).squeeze(1) + b_dec
            fired = v > 0
            fi, fv = i[fired], v[fired]
            count.index_add_(0, fi, torch.ones_like(fv, dtype=torch.float64))
            total.index_add_(0, fi, fv.double())
            vmax.scatter_reduce_(0, fi, fv, 'amax')
            bins = ((torch.log2(fv) - MIN_EXP) * BINS_PER_OCTAVE).floor().clamp(0, BINS - 1).long()
            hist.index_add_(0, fi * BINS + bins, torch.ones_like(fv, dtype=torch.float64))
            # Each feature's largest activation per context of the batch, merged into its running top contexts.
            c_local = (ctx - b0)[:, None].expand(-1, k)[fired]
            ctx_max = torch.zeros(len(lens) * F)
            ctx_max.scatter_reduce_(0, c_local * F + fi, fv, 'amax')
            ctx_max = ctx_max.view(len(lens), F).T
            cand_v = torch.cat([top_v, ctx_max], 1)
            cand_c = torch.cat([top_ctx, torch.arange(b0, b0 + len(lens))[None, :].expand(F, -1)], 1)
            top_v, sel = torch.topk(cand_v, top, dim=1)
            top_ctx = torch.gather(cand_c, 1, sel)
            tokens += x.shape[0]
            active += int(fired.sum())
            resid += float(((x - x_hat).double() ** 2).sum())
            x_sum += x.double().sum(0)
            x_sq += (x.double() ** 2).sum(0)
    seconds = time.perf_counter() - start
    var = float((x_sq - x_sum ** 2 / tokens).sum())
    lens_seconds = 0.0
    if cmd.get('lens'):
        start = time.perf_counter()
        m = state['model']
        W_U = (m.ln_f.weight[:, None] * m.wte.weight.T).contiguous()
        with torch.no_grad():
            for r0 in range(0, F, 512):
                w = W_dec[r0:r0 + 512] @ W_U
                torch.topk(w, LOGIT_TOKENS, dim=1)
                torch.topk(-w, LOGIT_TOKENS, dim=1)
        lens_seconds = time.perf_counter() - start
    if cmd.get('out'):
        count.float().numpy().tofile(os.path.join(cmd['out'], 'count.bin'))
        vmax.numpy().tofile(os.path.join(cmd['out'], 'max.bin'))
    return {
        'seconds': seconds,
        'lensSeconds': lens_seconds,
        'tokens': tokens,
        'l0': active / tokens,
        'normalizedMse': resid / var,
        'deadFraction': float((count == 0).double().mean()),
        'kept': int((top_v > 0).sum()),
        'histogramTotal': float(hist.sum()),
        'meanOfMeans': float((total[count > 0] / count[count > 0]).mean()) if bool((count > 0).any()) else math.nan,
    }


OPS = {'build_load': load, 'build_run': build}


def main():
    state = {}
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
            if cmd['op'] == 'hello':
                if torch is None:
                    raise RuntimeError(TORCH_ERROR)
                torch.set_num_threads(cmd['threads'])
                reply = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'numpy': np.__version__}
            else:
                reply = OPS[cmd['op']](cmd, state)
        except Exception as e:  # answered, so the runner reports it instead of hanging
            reply = {'error': repr(e)}
        print(json.dumps(reply), flush=True)


if __name__ == '__main__':
    main()
