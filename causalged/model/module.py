"""The CausalGeD network: encoder + decoder + causality-aware transformer + diffusion, and its losses.

Losses (documented choices where the paper is silent):

- autoencoder: decoder(e1 latent) reconstructs the ST vector (a VAE when the encoder is
  variational: plus ``kl_weight`` times the KL term). With ``cross_reconstruction`` (our
  addition, off in the faithful model) decoder(e2 latent) must also reconstruct the ST
  vector from the scRNA-seq vector, which aligns the two heads before the diffusion starts;
- diffusion: MSE + Huber on the diffusion target (``prediction``: v by default, see
  model/diffusion.py) of the AR-grouped latent tokens of the ST latent, conditioned on the
  scRNA-seq latent. The ST latent is divided by ``latent_scale`` (the spread of the training
  latents) so the diffusion sees roughly unit-variance data. The e2 head is trained by this
  loss (in the faithful model nothing else trains it); e1, the shared trunk and the decoder
  stay as the autoencoder left them unless the decoder is trained jointly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from causalged.model.cat import CausalityAwareTransformer
from causalged.model.diffusion import GaussianDiffusion, target_loss
from causalged.model.encoder import Decoder, TwoHeadedEncoder, kl_divergence, reparameterize
from causalged.model.masks import ar_group_sizes, attention_mask

INFERENCE_MODES = ("one_group", "autoregressive")


class CausalGeDModule(nn.Module):
    def __init__(
        self,
        *,
        n_spots: int,
        n_cells: int,
        latent_dim: int,
        n_tokens: int,
        n_cond: int,
        hidden: int,
        depth: int,
        heads: int,
        enc_hidden: int,
        n_timesteps: int,
        ar_decay: float,
        causal: bool = True,
        aligned_condition: bool = False,
        cross_reconstruction: bool = False,
        prediction: str = "v",
        variational: bool = True,
        ar_loss_weights: bool = False,
        huber_weight: float = 1.0,
        kl_weight: float = 1e-3,
    ):
        super().__init__()
        self.causal, self.ar_decay, self.ar_loss_weights = causal, ar_decay, ar_loss_weights
        self.huber_weight, self.kl_weight, self.cross_reconstruction = huber_weight, kl_weight, cross_reconstruction
        self.encoder = TwoHeadedEncoder(n_spots, n_cells, latent_dim, enc_hidden, variational=variational)
        self.decoder = Decoder(latent_dim, enc_hidden, n_spots)
        self.cat = CausalityAwareTransformer(
            latent_dim=latent_dim, n_tokens=n_tokens, n_cond=n_cond, hidden=hidden, depth=depth, heads=heads, causal=causal,
            aligned_condition=aligned_condition,
        )
        self.diffusion = GaussianDiffusion(n_timesteps, prediction=prediction)
        self.register_buffer("latent_scale", torch.ones(()))
        self.last_clipped_fraction = 0.0

    # ------------------------------------------------------------------ autoencoder
    def autoencoder_loss(self, x_st: torch.Tensor, x_sc: torch.Tensor, *, generator: torch.Generator | None = None):
        """ST reconstruction (+ cross-modal reconstruction) (+ KL); also returns the latents for reuse."""
        mean_st, logvar_st = self.encoder.encode_st(x_st)
        mean_sc, logvar_sc = self.encoder.encode_sc(x_sc)
        z_st = reparameterize(mean_st, logvar_st, generator=generator)
        loss = F.mse_loss(self.decoder(z_st), x_st)
        if self.kl_weight:
            loss = loss + self.kl_weight * kl_divergence(mean_st, logvar_st)
        if self.cross_reconstruction:
            z_sc = reparameterize(mean_sc, logvar_sc, generator=generator)
            loss = loss + F.mse_loss(self.decoder(z_sc), x_st)
            if self.kl_weight:
                loss = loss + self.kl_weight * kl_divergence(mean_sc, logvar_sc)
        return loss, (mean_st, logvar_st, mean_sc)

    def set_phase(self, phase: str) -> None:
        """Which parameters a training phase updates (the rest keep ``requires_grad=False``).

        ``autoencoder``: the encoder and decoder; ``diffusion``: the transformer and the e2 head
        (the condition), with e1, the trunk and the decoder frozen; ``joint``: everything.
        """
        trainable = {
            "autoencoder": ("encoder", "decoder"),
            "diffusion": ("cat", "encoder.e2"),
            "joint": ("encoder", "decoder", "cat"),
        }[phase]
        for name, param in self.named_parameters():
            param.requires_grad_(any(name == p or name.startswith(p + ".") for p in trainable))

    @torch.no_grad()
    def set_latent_scale(self, mean_st: torch.Tensor) -> None:
        self.latent_scale.fill_(float(mean_st.float().std().clamp_min(1e-4)))

    # ------------------------------------------------------------------ diffusion
    def diffusion_loss(self, z_st: torch.Tensor, z_sc: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Diffusion loss with a random token order per gene and AR groups per batch (Alg. 1-2).

        ``z_st`` and ``z_sc`` are unscaled latents (B, d). Group sizes are drawn once per batch
        (one mask shape); every gene gets its own token order and one timestep per group.
        """
        cat, device = self.cat, z_st.device
        batch, n_tokens = z_st.shape[0], cat.n_tokens
        x0 = cat.tokens(z_st / self.latent_scale)
        cond = z_sc / self.latent_scale
        if self.causal:
            sizes, _ = ar_group_sizes(n_tokens, self.ar_decay, generator=generator)
            order = torch.rand(batch, n_tokens, generator=generator).argsort(dim=1).to(device)
        else:
            sizes = [n_tokens]
            order = torch.arange(n_tokens, device=device).expand(batch, n_tokens)
        x0 = torch.gather(x0, 1, order.unsqueeze(-1).expand_as(x0))
        group_of_token = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
        t = self.diffusion.sample_timesteps((batch, len(sizes)), generator=generator)[:, group_of_token].to(device)
        noise = torch.randn(x0.shape, generator=generator).to(device, x0.dtype)
        xt = self.diffusion.q_sample(x0, t, noise)
        visible = n_tokens - sizes[-1]
        mask = attention_mask(n_tokens, cat.n_cond, sizes).to(device) if self.causal else None
        pred = cat(cond, xt, order, t, clean=x0[:, :visible], clean_pos=order[:, :visible], mask=mask)
        weights = torch.linspace(2.0, 1.0, n_tokens, device=device) if self.ar_loss_weights else None
        target = self.diffusion.target(x0, t, noise)
        return target_loss(pred.float(), target.float(), weights=weights, huber_weight=self.huber_weight)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample_latents(
        self,
        z_sc: torch.Tensor,
        *,
        sampler: str = "ddim",
        steps: int | None = 50,
        mode: str = "one_group",
        n_groups: int = 4,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        clip: float | None = 10.0,
    ) -> torch.Tensor:
        """Generate ST latents (B, d) given condition latents (B, d).

        ``one_group`` denoises all tokens together (the public code); ``autoregressive``
        draws a token order, splits it into ``n_groups`` near-equal groups and denoises them
        one after another, each given the clean groups before it (the paper). With the causal
        mask the condition (and every finished group) sits in a key/value cache;
        ``use_cache=False`` recomputes the whole masked sequence at every step (same result).
        ``clip`` bounds the clean estimate in latent-scale units (training latents have unit
        spread); ``last_clipped_fraction`` is the share of entries it touched in this call.
        """
        if mode not in INFERENCE_MODES:
            raise ValueError(f"unknown inference mode {mode!r}; choose one of {INFERENCE_MODES}")
        if mode == "autoregressive" and not self.causal:
            raise ValueError("autoregressive inference needs the causal mask (this model was built with causal_mask=False)")
        cat, device = self.cat, z_sc.device
        batch, n_tokens, n_cond = z_sc.shape[0], cat.n_tokens, cat.n_cond
        cond = z_sc / self.latent_scale
        if mode == "autoregressive":
            order = torch.randperm(n_tokens, generator=generator)
            n_groups = max(1, min(n_groups, n_tokens))
            sizes = [len(chunk) for chunk in torch.arange(n_tokens).tensor_split(n_groups)]
        else:
            order, sizes = torch.arange(n_tokens), [n_tokens]
        order = order.to(device)
        cached = self.causal and use_cache
        cache = cat.build_cache(cond) if cached else None
        tokens = torch.zeros(batch, n_tokens, cat.token_dim, device=device)
        start, clipped = 0, 0.0
        for g, size in enumerate(sizes):
            pos = order[start:start + size].expand(batch, size)
            clean_pos = order[:start].expand(batch, start)
            if cached:
                def denoise(x, t, pos=pos):
                    return cat.denoise_cached(cache, cond, x, pos, torch.full(pos.shape, t, device=device))
            else:
                mask = None
                if self.causal:  # the rows/columns of Algorithm 2 for [condition | finished groups | this group]
                    full = attention_mask(start + size, n_cond, sizes[:g + 1]).to(device)
                    keep = torch.cat([torch.arange(n_cond + start), torch.arange(n_cond + 2 * start, n_cond + 2 * start + size)]).to(device)
                    mask = full[keep][:, keep]
                clean = tokens[:, order[:start]]

                def denoise(x, t, pos=pos, clean=clean, clean_pos=clean_pos, mask=mask):
                    return cat(cond, x, pos, torch.full(pos.shape, t, device=device), clean=clean, clean_pos=clean_pos, mask=mask)

            x = self.diffusion.sample(denoise, (batch, size, cat.token_dim), sampler=sampler, steps=steps, generator=generator, device=device, clip=clip)
            clipped += self.diffusion.last_clipped_fraction * size / n_tokens
            tokens[:, order[start:start + size]] = x
            if cached and g < len(sizes) - 1:
                cache = cat.extend_cache(cache, x, pos)
            start += size
        self.last_clipped_fraction = clipped
        return tokens.reshape(batch, -1) * self.latent_scale

    @torch.no_grad()
    def condition_latent(self, x_sc: torch.Tensor) -> torch.Tensor:
        """The deterministic condition: the e2 posterior mean of a gene's scRNA-seq vector."""
        return self.encoder.encode_sc(x_sc)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
