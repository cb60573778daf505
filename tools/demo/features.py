"""Lists, per layer, a few dictionary features and the held-out tokens they fire on most, as
markdown, to help pick demo features. Reads only the saved assets.

  /usr/bin/python3 tools/demo/features.py assets/demo > /tmp/features.md
"""
import json
import os
import sys
from collections import Counter

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import gpt2  # noqa: E402
import st  # noqa: E402

PROBES = [' President', ' Congress', ' war', ' whale', ' ship', ' tax', ' Indian', ' sea']
RANDOM_PER_LAYER = 3


def main(assets: str) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model_dir = os.path.join(assets, 'model')
    c = json.load(open(os.path.join(model_dir, 'config.json')))
    enc = bpe.load_tokenizer_json(os.path.join(model_dir, 'tokenizer.json'))
    model = gpt2.GPT2(c['vocab_size'], c['n_positions'], c['n_embd'], c['n_layer'], c['n_head'])
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in st.read(os.path.join(model_dir, 'model.safetensors')).items()})
    model.eval()
    bos, ctx = c['bos_token_id'], c['n_positions']
    text = open(os.path.join(assets, 'heldout.txt'), encoding='utf-8').read()
    rows = []
    for para in text.split('\n\n'):
        ids = enc.encode(para)
        rows += [[bos] + ids[s:s + ctx - 1] for s in range(0, len(ids), ctx - 1)]
    tokens = np.array([t for r in rows for t in r[1:]])
    resid = [[] for _ in range(c['n_layer'])]
    with torch.no_grad():
        for r in rows:
            _, out = model(torch.tensor([r]), return_resid=True)
            for L, x in enumerate(out):
                resid[L].append(x[0, 1:])
    manifest = json.load(open(os.path.join(assets, 'manifest.json')))

    def context(pos: int) -> str:
        left = ''.join(enc.token_str(int(t)) for t in tokens[max(0, pos - 10):pos])
        right = ''.join(enc.token_str(int(t)) for t in tokens[pos + 1:pos + 3])
        return (left + '[[' + enc.token_str(int(tokens[pos])) + ']]' + right).replace('\n', ' ').replace('|', '\\|')

    print(f'Held-out slice: {len(tokens)} tokens of heldout.txt. Contexts show ten tokens before the '
          f'[[token]] and two after.\n')
    for entry in manifest['saes']:
        L = int(entry['hook_name'].split('.')[1])
        w = {k: torch.from_numpy(np.array(v)) for k, v in st.read(os.path.join(assets, entry['path'], 'sae_weights.safetensors')).items()}
        x = torch.cat(resid[L])
        pre = torch.relu((x - w['b_dec']) @ w['W_enc'] + w['b_enc'])
        vals, idx = pre.topk(entry['k'], dim=-1)
        acts = torch.zeros_like(pre).scatter_(1, idx, vals).numpy()
        freq = (acts > 0).mean(0)
        chosen: list[tuple[int, str]] = []
        for probe in PROBES:
            tid = enc.vocab.get(''.join(bpe.BYTE_CHARS[b] for b in probe.encode()))
            hits = np.flatnonzero(tokens == tid) if tid is not None else []
            if len(hits) >= 3:
                f = int(acts[hits].mean(0).argmax())
                if f not in [i for i, _ in chosen]:
                    chosen.append((f, f'strongest on "{probe.strip()}"'))
        moderate = np.flatnonzero((freq > 0.002) & (freq < 0.03))
        for f in rng.choice(moderate, size=min(RANDOM_PER_LAYER, len(moderate)), replace=False):
            chosen.append((int(f), 'random, firing 0.2-3%'))
        print(f'### {entry["hook_name"]} (saes/layer{L})\n')
        print('| feature | why listed | fires on | most common top tokens | top contexts |')
        print('|---|---|---|---|---|')
        for f, why in chosen:
            top = np.argsort(-acts[:, f])[:40]
            top = top[acts[top, f] > 0]
            common = ', '.join(f'`{enc.token_str(int(t)).strip() or repr(enc.token_str(int(t)))}` {n}'
                               for t, n in Counter(tokens[top].tolist()).most_common(4))
            ctxs = ' / '.join(f'…{context(int(p))}…' for p in top[:3])
            print(f'| {f} | {why} | {100 * freq[f]:.2f}% | {common} | {ctxs} |')
        print()


if __name__ == '__main__':
    main(sys.argv[1])
