"""The model's building blocks: AR groups, causal mask, schedule, samplers, key/value cache."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from causalged.model.diffusion import GaussianDiffusion, cosine_schedule, target_loss, spaced_timesteps
from causalged.model.masks import ar_group_sizes, attention_mask, group_count_probabilities, paper_mask
from causalged.model.module import CausalGeDModule

torch.set_num_threads(1)

# method.md section 3: s = 7, c = 2, sizes [2, 2, 3]; 1 = masked.
PAPER_EXAMPLE = """
0011111111111
0011111111111
0000111111111
0000111111111
0000001111111
0000001111111
0011110011111
0011110011111
0000111100111
0000111100111
0000001111000
0000001111000
0000001111000
"""


def test_mask_matches_worked_example():
    expected = torch.tensor([[int(ch) for ch in row] for row in PAPER_EXAMPLE.split()])
    assert torch.equal(paper_mask(7, 2, [2, 2, 3]), expected)
    # PyTorch polarity: True = may attend, the opposite of the paper's matrix.
    assert torch.equal(attention_mask(7, 2, [2, 2, 3]), expected == 0)


def test_mask_single_group_is_condition_plus_own_group():
    mask = attention_mask(5, 3, [5])
    assert mask.shape == (8, 8)
    assert mask[3:, :].all()  # every noisy token sees the condition and all noisy tokens
    assert not mask[:3, 3:].any()  # condition tokens see only themselves


@pytest.mark.parametrize("decay", [0.8, 1.0])
def test_ar_group_sizes_follow_algorithm_1(decay):
    n_tokens, draws = 8, 20_000
    generator = torch.Generator().manual_seed(0)
    counts = np.zeros(n_tokens, dtype=int)
    for _ in range(draws):
        sizes, cumsum = ar_group_sizes(n_tokens, decay, generator=generator)
        assert sum(sizes) == n_tokens and min(sizes) >= 1
        assert cumsum[0] == 0 and cumsum[-1] == n_tokens and len(cumsum) == len(sizes) + 1
        counts[len(sizes) - 1] += 1
    expected = group_count_probabilities(n_tokens, decay).numpy() * draws
    if decay < 1:
        assert np.allclose(expected[1:] / expected[:-1], decay)  # P(N = i) proportional to decay^(i-1)
    assert chisquare(counts, expected).pvalue > 1e-3


def test_cosine_schedule_monotone_in_unit_interval():
    betas, abar = cosine_schedule(2000)
    assert torch.all((abar > 0) & (abar < 1))
    assert torch.all(abar[1:] < abar[:-1])
    assert torch.all(betas[1:] >= betas[:-1]) and torch.all((betas > 0) & (betas < 1))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 20])
def test_fractional_schedules_hit_every_nth_timestep(n):
    timesteps = spaced_timesteps(2000, math.ceil(2000 / n))
    assert torch.equal(timesteps, torch.arange(1999, -1, -n).flip(0))


def test_ddim_steps_are_evenly_spaced_and_visited():
    assert torch.equal(spaced_timesteps(2000, 50), torch.arange(39, 2000, 40))
    odd = spaced_timesteps(2000, 333)
    assert len(set(odd.tolist())) == 333 and odd[-1] == 1999 and set(torch.diff(odd).tolist()) <= {6, 7}
    diffusion = GaussianDiffusion(200)
    for sampler, steps in (("ddim", 10), ("ddpm", 67), ("ddpm", None)):
        visited = []

        def denoise(x, t):
            visited.append(t)
            return torch.zeros_like(x)

        diffusion.sample(denoise, (2, 3), sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(0))
        assert visited == diffusion.timesteps(sampler, steps).flip(0).tolist()
    assert len(visited) == 200


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_sampler_recovers_known_sample_with_an_oracle(prediction):
    """Whatever the target, an exact network output leads every sampler back to the sample."""
    diffusion = GaussianDiffusion(500, prediction=prediction)
    x0 = torch.randn(4, 6)
    abar = diffusion.alphas_cumprod

    def oracle(x, t):
        eps = (x - abar[t].sqrt() * x0) / (1 - abar[t]).sqrt()
        return diffusion.target(x0, torch.tensor([t]), eps.float()) if prediction != "eps" else eps

    for sampler, steps in (("ddim", 20), ("ddpm", 167)):
        out = diffusion.sample(oracle, x0.shape, sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(1), clip=10.0)
        assert torch.allclose(out.double(), x0.double(), atol=1e-4)
        assert diffusion.last_clipped_fraction == 0.0


def test_v_prediction_does_not_amplify_errors_at_low_snr():
    """At the first sampling step (alpha-bar ~ 6e-10) an output error of 0.01 moves the clean
    estimate by about 4e4 x 0.01 under noise prediction, by at most 0.01 under v-prediction."""
    x = torch.randn(3, 5)
    a_t = float(GaussianDiffusion(2000).alphas_cumprod[-1])
    error = torch.full_like(x, 0.01)
    for prediction, bound in (("eps", 100.0), ("v", 0.011)):
        diffusion = GaussianDiffusion(2000, prediction=prediction)
        out = torch.zeros_like(x)
        shift = (diffusion.split_output(out + error, x, a_t)[0] - diffusion.split_output(out, x, a_t)[0]).abs().max()
        assert (shift > bound) if prediction == "eps" else (shift < bound)


def test_target_loss_weights_change_emphasis_not_scale():
    pred, target = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    plain = target_loss(pred, target)
    weighted = target_loss(pred, target, weights=torch.linspace(2.0, 1.0, 4))
    assert torch.isclose(plain, weighted)


def _tiny_module(causal=True):
    torch.manual_seed(0)
    module = CausalGeDModule(n_spots=10, n_cells=12, latent_dim=16, n_tokens=8, n_cond=3, hidden=32, depth=2, heads=4,
                             enc_hidden=16, n_timesteps=50, ar_decay=0.8, causal=causal)
    torch.nn.init.normal_(module.cat.out.weight, std=0.05)  # not the zero init, so outputs depend on inputs
    return module.eval()


@pytest.mark.parametrize("mode", ["one_group", "autoregressive"])
def test_cached_inference_equals_uncached(mode):
    module = _tiny_module()
    z_sc = torch.randn(5, 16)
    outs = [
        module.sample_latents(z_sc, mode=mode, n_groups=3, steps=8, generator=torch.Generator().manual_seed(3), use_cache=cache, clip=None)
        for cache in (True, False)
    ]
    assert outs[0].abs().mean() > 0.1
    assert torch.allclose(outs[0], outs[1], atol=1e-4, rtol=1e-4)


def test_training_loss_runs_for_both_variants():
    for causal in (True, False):
        module = _tiny_module(causal).train()
        loss = module.diffusion_loss(torch.randn(6, 16), torch.randn(6, 16), generator=torch.Generator().manual_seed(0))
        loss.backward()
        assert torch.isfinite(loss) and module.cat.cond_in.weight.grad is not None
    nomask = _tiny_module(causal=False)
    assert nomask.sample_latents(torch.randn(2, 16), steps=2).shape == (2, 16)  # one group, full attention, no cache
    with pytest.raises(ValueError, match="causal mask"):
        nomask.sample_latents(torch.randn(2, 16), mode="autoregressive", steps=2)
