"""Plain numpy readings of the saved assets, written from the file formats alone (no torch), so that
verify.py can check the files say what the torch model and SAE trainer meant."""
import json
import os

import numpy as np

import st


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


class ReferenceGPT2:
    """Hugging Face GPT-2 from config.json + model.safetensors: Conv1D weights [in, out], tied head."""

    def __init__(self, model_dir: str):
        self.cfg = json.load(open(os.path.join(model_dir, 'config.json')))
        self.w = {k: v.astype(np.float64) for k, v in st.read(os.path.join(model_dir, 'model.safetensors')).items()}

    def forward(self, ids: list[int]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits [T, vocab] and hook_resid_post of every layer [T, d] for one sequence."""
        c, w = self.cfg, self.w
        T, d, H, eps = len(ids), c['n_embd'], c['n_head'], c['layer_norm_epsilon']
        dh = d // H
        x = w['wte.weight'][ids] + w['wpe.weight'][:T]
        resid = []
        causal = np.triu(np.full((T, T), -np.inf), 1)
        for L in range(c['n_layer']):
            p = f'h.{L}.'
            h = layer_norm(x, w[p + 'ln_1.weight'], w[p + 'ln_1.bias'], eps)
            qkv = h @ w[p + 'attn.c_attn.weight'] + w[p + 'attn.c_attn.bias']
            q, k, v = (qkv[:, i * d:(i + 1) * d].reshape(T, H, dh).transpose(1, 0, 2) for i in range(3))
            s = q @ k.transpose(0, 2, 1) / np.sqrt(dh) + causal
            a = np.exp(s - s.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            z = (a @ v).transpose(1, 0, 2).reshape(T, d)
            x = x + z @ w[p + 'attn.c_proj.weight'] + w[p + 'attn.c_proj.bias']
            h = layer_norm(x, w[p + 'ln_2.weight'], w[p + 'ln_2.bias'], eps)
            x = x + gelu_new(h @ w[p + 'mlp.c_fc.weight'] + w[p + 'mlp.c_fc.bias']) @ w[p + 'mlp.c_proj.weight'] + w[p + 'mlp.c_proj.bias']
            resid.append(x)
        logits = layer_norm(x, w['ln_f.weight'], w['ln_f.bias'], eps) @ w['wte.weight'].T
        return logits, resid


class ReferenceSAE:
    """SAELens topk dictionary from cfg.json + sae_weights.safetensors."""

    def __init__(self, folder: str):
        self.cfg = json.load(open(os.path.join(folder, 'cfg.json')))
        self.w = {k: v.astype(np.float64) for k, v in st.read(os.path.join(folder, 'sae_weights.safetensors')).items()}

    def encode(self, x: np.ndarray) -> np.ndarray:
        w = self.w
        if self.cfg['apply_b_dec_to_input']:
            x = x - w['b_dec']
        pre = np.maximum(x @ w['W_enc'] + w['b_enc'], 0)
        keep = np.argpartition(-pre, self.cfg['k'] - 1, axis=-1)[..., :self.cfg['k']]
        f = np.zeros_like(pre)
        np.put_along_axis(f, keep, np.take_along_axis(pre, keep, -1), -1)
        return f

    def decode(self, f: np.ndarray) -> np.ndarray:
        return f @ self.w['W_dec'] + self.w['b_dec']
