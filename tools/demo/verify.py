"""Checks the written assets against independent readings: manifest checksums, tokenizer.json round
trips and id equality with @huggingface/tokenizers (node), torch logits vs a numpy re-implementation
from the saved files, and the SAEs' saved-tensor metrics.

  /usr/bin/python3 tools/demo/verify.py assets/demo
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import gpt2  # noqa: E402
import st  # noqa: E402
from reference import ReferenceGPT2, ReferenceSAE  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EDGE_CASES = [
    "Mr. President, we've 1,234 ships; they'll sail in 1846 -- or won't.",
    'Call me Ishmael.   Some years ago\u2014never mind how long precisely\u2014having little money.\n\n\tIndented\r\nline',
    'Unicode: caf\u00e9 na\u00efve \u00bd \u00b2 \u4e2d\u6587 \U0001F40B emoji, and a literal <|endoftext|> inside text',
    "  leading spaces, trailing spaces   \n\n\n",
    "I'M SHOUTING'S 'quoted' \"double\" $3.50 50% #hash @at",
]
failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(('ok   ' if ok else 'FAIL ') + what, flush=True)
    if not ok:
        failures.append(what)


def node_ids(tokenizer_path: str, texts: list[str]) -> list[list[int]] | None:
    """Ids from @huggingface/tokenizers, run from the repo root so its node_modules resolve."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, 'texts.json')
        json.dump(texts, open(src, 'w'))
        script = ("import { Tokenizer } from '@huggingface/tokenizers'; import fs from 'node:fs';"
                  f"const t = new Tokenizer(JSON.parse(fs.readFileSync({json.dumps(tokenizer_path)}, 'utf8')), {{}});"
                  f"const texts = JSON.parse(fs.readFileSync({json.dumps(src)}, 'utf8'));"
                  "console.log(JSON.stringify(texts.map((s) => t.encode(s, { add_special_tokens: false }).ids)));")
        try:
            out = subprocess.run(['node', '--input-type=module', '-e', script], cwd=REPO, check=True,
                                 capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f'skip node comparison: {e}')
            return None
        return json.loads(out.stdout)


def main(assets: str) -> None:
    manifest = json.load(open(os.path.join(assets, 'manifest.json')))
    listed = set(manifest['files'])
    present = {os.path.relpath(os.path.join(r, n), assets).replace(os.sep, '/') for r, _, ns in os.walk(assets) for n in ns}
    check(present - {'manifest.json', 'README.md'} == listed, 'manifest lists exactly the asset files')
    for rel, entry in manifest['files'].items():
        data = open(os.path.join(assets, rel), 'rb').read()
        ok = hashlib.sha256(data).hexdigest() == entry['sha256'] and len(data) == entry['bytes']
        if rel.endswith('.safetensors'):
            ok = ok and st.shapes(os.path.join(assets, rel)) == entry['tensors']
        check(ok, f'{rel}: sha256, size and shapes match the manifest')

    tok_path = os.path.abspath(os.path.join(assets, 'model', 'tokenizer.json'))
    enc = bpe.load_tokenizer_json(tok_path)
    heldout = open(os.path.join(assets, 'heldout.txt'), encoding='utf-8').read()
    paragraphs = [p for p in heldout.split('\n\n') if p][:8]
    texts = [p[:3000] for p in paragraphs] + EDGE_CASES
    ids = [enc.encode(t) for t in texts]
    check(all(enc.decode(i) == t for i, t in zip(ids, texts)), f'python BPE decode(encode(x)) == x on {len(texts)} texts')
    js = node_ids(tok_path, texts)
    if js is not None:
        same = [a == b for a, b in zip(ids, js)]
        check(all(same), f'@huggingface/tokenizers ids equal the python encoder ids on {sum(same)}/{len(texts)} texts '
                         f'({sum(map(len, ids))} tokens)')

    model_dir = os.path.join(assets, 'model')
    ref = ReferenceGPT2(model_dir)
    c = ref.cfg
    model = gpt2.GPT2(c['vocab_size'], c['n_positions'], c['n_embd'], c['n_layer'], c['n_head'])
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in st.read(os.path.join(model_dir, 'model.safetensors')).items()}, strict=True)
    model.eval()
    bos, ctx = c['bos_token_id'], c['n_positions']
    stream = [i for p in paragraphs for i in enc.encode(p) + [bos]]
    seqs = [[bos] + stream[s:s + ctx - 1] for s in range(0, 4 * (ctx - 1), ctx - 1)]
    worst, nll, n = 0.0, 0.0, 0
    resid_rows: list[list[np.ndarray]] = [[] for _ in range(c['n_layer'])]
    for seq in seqs:
        logits, resid = ref.forward(seq)
        with torch.no_grad():
            t_logits, t_resid = model(torch.tensor([seq]), return_resid=True)
        worst = max(worst, float(np.abs(logits - t_logits[0].double().numpy()).max()))
        for L in range(c['n_layer']):
            worst = max(worst, float(np.abs(resid[L] - t_resid[L][0].double().numpy()).max()))
            resid_rows[L].append(resid[L][1:])
        lp = logits[:-1] - np.log(np.exp(logits[:-1] - logits[:-1].max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits[:-1].max(-1, keepdims=True)
        nll -= lp[np.arange(len(seq) - 1), seq[1:]].sum()
        n += len(seq) - 1
    check(worst < 1e-3, f'numpy reference vs torch: max |logit or resid diff| {worst:.2e} over {len(seqs)} windows of {ctx}')
    print(f'     numpy-reference perplexity on those windows {np.exp(nll / n):.2f} '
          f'(manifest, all held-out tokens: {manifest["model"]["heldout_perplexity"]})')

    for entry in manifest['saes']:
        sae = ReferenceSAE(os.path.join(assets, entry['path']))
        cfg = sae.cfg
        check(cfg['architecture'] == 'topk' and cfg['normalize_activations'] == 'none' and cfg['metadata']['hook_name'] == entry['hook_name']
              and sae.w['W_enc'].shape == (cfg['d_in'], cfg['d_sae']) and sae.w['W_dec'].shape == (cfg['d_sae'], cfg['d_in']),
              f'{entry["path"]}: cfg.json and tensor shapes agree')
        norms = np.linalg.norm(sae.w['W_dec'], axis=1)
        check(np.abs(norms - 1).max() < 1e-4, f'{entry["path"]}: decoder rows unit-norm (max dev {np.abs(norms - 1).max():.1e})')
        L = int(entry['hook_name'].split('.')[1])
        x = np.concatenate(resid_rows[L])
        f = sae.encode(x)
        ev = 1 - ((x - sae.decode(f)) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
        print(f'     {entry["path"]}: numpy EV {ev:.4f} L0 {(f > 0).sum(1).mean():.2f} on {len(x)} tokens '
              f'(manifest: EV {entry["explained_variance"]}, L0 {entry["l0"]}, dead {entry["dead_fraction"]})')
        check(abs(ev - entry['explained_variance']) < 0.1, f'{entry["path"]}: numpy EV near the recorded one')

    print('all checks passed' if not failures else f'{len(failures)} check(s) failed')
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main(sys.argv[1])
