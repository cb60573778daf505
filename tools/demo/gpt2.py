"""A GPT-2 whose parameter names and layouts are Hugging Face's, so its state_dict saves as-is.

Linear weights are Conv1D style, [in, out] with y = x @ W + b, and the LM head is tied to wte.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Conv1D(nn.Module):
    def __init__(self, n_in: int, n_out: int, std: float):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * std)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class Attention(nn.Module):
    def __init__(self, d: int, n_head: int, std: float, proj_std: float):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Conv1D(d, 3 * d, std)
        self.c_proj = Conv1D(d, d, proj_std)

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.c_attn(x).view(B, T, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.n_head)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = att.masked_fill(mask, float('-inf')).softmax(-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, d))


class MLP(nn.Module):
    def __init__(self, d: int, std: float, proj_std: float):
        super().__init__()
        self.c_fc = Conv1D(d, 4 * d, std)
        self.c_proj = Conv1D(4 * d, d, proj_std)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate='tanh'))  # gelu_new


class Block(nn.Module):
    def __init__(self, d: int, n_head: int, n_layer: int, eps: float):
        super().__init__()
        std, proj_std = 0.02, 0.02 / math.sqrt(2 * n_layer)  # GPT-2's scaled init of residual writes
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.attn = Attention(d, n_head, std, proj_std)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.mlp = MLP(d, std, proj_std)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    def __init__(self, vocab_size: int, n_positions: int, n_embd: int, n_layer: int, n_head: int, eps: float = 1e-5):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(n_positions, n_embd)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)
        self.h = nn.ModuleList(Block(n_embd, n_head, n_layer, eps) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, eps=eps)

    def forward(self, idx, return_resid: bool = False):
        """Logits [B, T, vocab]; with return_resid also each block's output (hook_resid_post)."""
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        resid = []
        for block in self.h:
            x = block(x)
            if return_resid:
                resid.append(x)
        logits = self.ln_f(x) @ self.wte.weight.T
        return (logits, resid) if return_resid else logits


def hf_config(vocab_size: int, n_positions: int, n_embd: int, n_layer: int, n_head: int, eot_id: int) -> dict:
    return {
        'architectures': ['GPT2LMHeadModel'],
        'model_type': 'gpt2',
        'vocab_size': vocab_size,
        'n_positions': n_positions,
        'n_ctx': n_positions,
        'n_embd': n_embd,
        'n_layer': n_layer,
        'n_head': n_head,
        'n_inner': None,
        'activation_function': 'gelu_new',
        'layer_norm_epsilon': 1e-5,
        'resid_pdrop': 0.0,
        'embd_pdrop': 0.0,
        'attn_pdrop': 0.0,
        'initializer_range': 0.02,
        'scale_attn_weights': True,
        'tie_word_embeddings': True,
        'bos_token_id': eot_id,
        'eos_token_id': eot_id,
        'torch_dtype': 'float32',
    }
