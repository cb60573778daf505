"""TopK sparse autoencoder (Gao et al. 2024) with AuxK dead-latent revival, saved in SAELens layout.

Training sees inputs divided by one scalar (mean norm becomes sqrt(d_in)) so that learning rates do
not depend on a layer's scale; that scalar is folded into b_enc and b_dec when saving, which is exact
because ReLU and top-k commute with a positive scale. The saved dictionary therefore takes raw
activations (normalize_activations: none) and its latents are in raw-activation units.
"""
import math
import time

import numpy as np
import torch


class TopKSAE(torch.nn.Module):
    def __init__(self, d_in: int, d_sae: int, k: int, b_dec_init: torch.Tensor, gen: torch.Generator):
        super().__init__()
        self.k = k
        w = torch.randn(d_sae, d_in, generator=gen)
        w /= w.norm(dim=1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w)  # rows are unit-norm feature directions
        self.W_enc = torch.nn.Parameter(w.T.clone())  # tied init: the encoder starts as the decoder's transpose
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.b_dec = torch.nn.Parameter(b_dec_init.clone())

    def pre(self, x):
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def decode_sparse(self, vals, idx):
        """Sum of k scaled decoder rows per input; embedding_bag does this without a dense
        [batch, d_sae] x [d_sae, d_in] product or a [batch, k, d_in] temporary."""
        return torch.nn.functional.embedding_bag(idx, self.W_dec, per_sample_weights=vals, mode='sum')

    def forward(self, x):
        pre = self.pre(x)
        vals, idx = pre.topk(self.k, dim=-1)
        return pre, vals, idx, self.decode_sparse(vals, idx) + self.b_dec

    @torch.no_grad()
    def normalize_decoder(self):
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True)

    @torch.no_grad()
    def project_decoder_grad(self):
        """Drops the gradient component along each row, which renormalisation would undo anyway."""
        g, w = self.W_dec.grad, self.W_dec
        g -= (g * w).sum(1, keepdim=True) * w


def train(acts: torch.Tensor, d_sae: int, k: int, *, batch: int, lr: float, epochs: float, k_aux: int,
          aux_coef: float, dead_after_tokens: int, seed: int, log) -> tuple[TopKSAE, float]:
    """acts: [N, d_in] float16 training activations. Returns the model (trained on scaled inputs) and the scale."""
    gen = torch.Generator().manual_seed(seed)
    n, d_in = acts.shape
    sample = acts[torch.randperm(n, generator=gen)[:min(n, 65536)]].float()
    scale = sample.norm(dim=1).mean().item() / math.sqrt(d_in)
    sae = TopKSAE(d_in, d_sae, k, sample.mean(0) / scale, gen)
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    steps = int(epochs * n / batch)
    warmup, decay_from = max(1, steps // 20), int(steps * 0.7)
    last_fired = torch.zeros(d_sae, dtype=torch.long)
    seen, t0 = 0, time.time()
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(math.ceil(epochs))])
    for step in range(steps):
        frac = min((step + 1) / warmup, 1.0, (steps - step) / max(1, steps - decay_from))
        for g in opt.param_groups:
            g['lr'] = lr * frac
        x = acts[order[step * batch:(step + 1) * batch]].float() / scale
        pre, vals, idx, x_hat = sae(x)
        err = x - x_hat
        var = (x - x.mean(0)).pow(2).sum(1).mean()
        mse = err.pow(2).sum(1).mean() / var
        seen += x.shape[0]
        last_fired[idx[vals > 0]] = seen
        dead = (seen - last_fired) > dead_after_tokens
        n_dead = int(dead.sum())
        loss = mse
        aux = torch.zeros(())
        if n_dead > 0:
            # AuxK: the dead latents' best k_aux try to explain what the live ones missed, which gives them
            # gradient again; without it a few hundred latents never fire after the first steps.
            aux_vals, aux_idx = (pre * dead).topk(min(k_aux, n_dead), dim=-1)
            e = err.detach()
            aux = (e - sae.decode_sparse(aux_vals, aux_idx)).pow(2).sum(1).mean() / e.pow(2).sum(1).mean().clamp_min(1e-12)
            loss = loss + aux_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sae.project_decoder_grad()
        opt.step()
        sae.normalize_decoder()
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            log(f'  sae step {step + 1}/{steps} fvu {mse.item():.4f} aux {aux.item():.3f} '
                f'dead(train window) {n_dead / d_sae:.3f} {time.time() - t0:.0f}s')
    return sae, scale


def export(sae: TopKSAE, scale: float) -> dict[str, np.ndarray]:
    """SAELens tensors for raw (unscaled) inputs."""
    with torch.no_grad():
        return {
            'W_enc': sae.W_enc.detach().numpy().astype(np.float32),
            'b_enc': (sae.b_enc * scale).detach().numpy().astype(np.float32),
            'W_dec': sae.W_dec.detach().numpy().astype(np.float32),
            'b_dec': (sae.b_dec * scale).detach().numpy().astype(np.float32),
        }


def evaluate(w: dict[str, np.ndarray], k: int, acts: torch.Tensor, chunk: int = 8192) -> dict:
    """Explained variance, mean L0, dead fraction and per-latent firing frequency of saved tensors on raw activations."""
    W_enc, b_enc, W_dec, b_dec = (torch.from_numpy(np.array(w[n])) for n in ('W_enc', 'b_enc', 'W_dec', 'b_dec'))
    n = acts.shape[0]
    sse, l0 = 0.0, 0.0
    fired = torch.zeros(W_enc.shape[1], dtype=torch.long)
    mean = acts.float().mean(0)
    sst = 0.0
    with torch.no_grad():
        for i in range(0, n, chunk):
            x = acts[i:i + chunk].float()
            pre = torch.relu((x - b_dec) @ W_enc + b_enc)
            vals, idx = pre.topk(k, dim=-1)
            x_hat = (vals.unsqueeze(-1) * W_dec[idx]).sum(1) + b_dec
            sse += (x - x_hat).pow(2).sum().item()
            sst += (x - mean).pow(2).sum().item()
            active = vals > 0
            l0 += active.sum().item()
            fired += torch.bincount(idx[active], minlength=fired.shape[0])
    freq = fired.double() / n
    return {
        'explained_variance': 1 - sse / sst,
        'l0': l0 / n,
        'dead_fraction': float((fired == 0).double().mean()),
        'eval_tokens': n,
        'log10_freq': torch.log10(freq + 1e-10).float().numpy(),
    }
