"""The generator really generates: trained on the demo, CausalGeD beats the gene-independent
floor on held-out genes, its samples follow the condition, and sampling stays off the clip.

Each test here fails when the generator is bypassed (``sample_latents`` returning the condition
latent), when the transformer's output is zeroed, or when the condition is ignored.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from causalged.research.benchmark import prepare
from causalged.evaluation.crossval import fold_inputs
from causalged.evaluation.metrics import pcc
from causalged.methods import get_imputer
from causalged.model import CausalGeD
from causalged.model.data import genes_by_cells, genes_by_spots, standardize_genes

#: A small but real budget: validation decides when to stop within it.
SMALL = dict(preset="cpu", device="cpu", seed=0, hidden=64, depth=2, epochs=80, patience=30, min_steps_per_epoch=10, n_samples=4, steps=20)


@pytest.fixture(scope="module")
def demo_fold():
    """Fold 0 of 5 on the simulated demo pair, after the pipeline's own preprocessing."""
    _, sc_data, st_data, split = prepare("demo", seed=0, n_folds=5)
    return fold_inputs(sc_data, st_data, split, 0)


@pytest.fixture(scope="module")
def trained(demo_fold):
    imputer = get_imputer("causalged", **SMALL)
    imputer.fit(demo_fold["sc_train"], demo_fold["st_train"])
    return imputer


def _mean_pcc(pred, truth) -> float:
    return float(np.nanmean(pcc(pred, truth)))


def test_trained_model_beats_the_gene_independent_floor(trained, demo_fold):
    floor = get_imputer("mean_map").fit(demo_fold["sc_train"], demo_fold["st_train"]).predict(demo_fold["sc_heldout"])
    model = trained.predict(demo_fold["sc_heldout"])
    assert _mean_pcc(model, demo_fold["truth"]) > _mean_pcc(floor, demo_fold["truth"]) + 0.05
    # not one map for every gene: the predicted maps of different genes differ
    corr = np.corrcoef(model.T)
    assert np.nanmean(corr[np.triu_indices_from(corr, 1)]) < 0.9


def test_the_generator_adds_to_the_condition_alone(trained, demo_fold):
    """Decoding the condition latent directly (transformer and diffusion bypassed) is worse on
    held-out genes, and on training genes the generated latents land far closer to the ST
    latents than the condition latents are."""
    model, module = trained.model_, trained.model_.module
    generated = _mean_pcc(trained.predict(demo_fold["sc_heldout"]), demo_fold["truth"])
    z_sc, sc_mean, sc_std = standardize_genes(genes_by_cells(demo_fold["sc_heldout"], model.cell_groups, model.n_columns))
    with torch.no_grad():
        pattern = module.decode(module.condition_latent(torch.from_numpy(z_sc))).numpy().T
    st_mean, st_std = model.levels.predict_moments(sc_mean, sc_std)
    bypassed = _mean_pcc(np.maximum(pattern * st_std + st_mean, 0), demo_fold["truth"])
    assert generated > bypassed + 0.05

    z_sc = torch.from_numpy(standardize_genes(genes_by_cells(demo_fold["sc_train"], model.cell_groups, model.n_columns))[0])
    z_st = torch.from_numpy(standardize_genes(genes_by_spots(demo_fold["st_train"]))[0])
    with torch.no_grad():
        condition, target = module.condition_latent(z_sc), module.encoder.encode_st(z_st)[0]
        sampled = module.sample_latents(condition, steps=20, generator=torch.Generator().manual_seed(0))
    assert (sampled - target).pow(2).mean() < 0.5 * (condition - target).pow(2).mean()


def test_a_shuffled_condition_scores_worse(trained, demo_fold):
    truth, sc_heldout = demo_fold["truth"], demo_fold["sc_heldout"]
    shuffled = sc_heldout[:, np.random.default_rng(1).permutation(sc_heldout.shape[1])]
    right, wrong = _mean_pcc(trained.predict(sc_heldout), truth), _mean_pcc(trained.predict(shuffled), truth)
    assert right > wrong + 0.1


def test_two_conditions_give_different_samples_beyond_noise(trained, demo_fold):
    samples = trained.predict_samples(demo_fold["sc_heldout"][:, :2], n_samples=6, seed=3)  # (6, spots, 2)
    within = samples.std(axis=0).mean()  # sampling noise of one gene
    between = np.abs(samples[:, :, 0].mean(0) - samples[:, :, 1].mean(0)).mean()
    assert between > 2 * within


def test_sampling_stays_off_the_clip_and_records_it(trained, demo_fold):
    trained.predict(demo_fold["sc_heldout"])
    assert trained.info_["clipped_fraction"] < 0.01
    assert trained.model_.sampling_info["mode"] == "one_group"
    history = trained.model_.history
    scored = history[history["val_pcc"].notna()]
    assert len(scored) >= 3 and scored["clipped_fraction"].max() < 0.01
    assert trained.model_.train_info["best_epoch"] in set(scored["epoch"])  # the kept weights are a validated epoch


def test_autoregressive_inference_shares_the_fit_and_generates(trained, demo_fold):
    ar = get_imputer("causalged_ar", **SMALL).adopt_fit(trained)
    assert ar.info_["fit_shared_with"] == "causalged" and ar.params["mode"] == "autoregressive"
    pred = ar.predict(demo_fold["sc_heldout"])
    assert trained.model_.sampling_info["mode"] == "autoregressive"
    floor = get_imputer("mean_map").fit(demo_fold["sc_train"], demo_fold["st_train"]).predict(demo_fold["sc_heldout"])
    assert _mean_pcc(pred, demo_fold["truth"]) > _mean_pcc(floor, demo_fold["truth"])
    with pytest.raises(ValueError, match="do not train the same model"):
        get_imputer("causalged_ar", **{**SMALL, "depth": 1}).adopt_fit(trained)


def test_faithful_and_extended_designs_are_named_apart():
    faithful, nomask, plus = (CausalGeD(30, 40, method=m) for m in ("causalged", "causalged_nomask", "causalged_plus"))
    assert faithful.faithful and nomask.faithful and not plus.faithful
    assert (faithful.config["causal_mask"], nomask.config["causal_mask"], plus.config["causal_mask"]) == (True, False, True)
    assert faithful.module.cat.cond_aligned_in is None and nomask.module.cat.cond_aligned_in is None
    assert plus.module.cat.cond_aligned_in is not None and plus.module.cross_reconstruction
    for model in (faithful, CausalGeD(30, 40, preset="paper")):
        assert not (model.config["aligned_condition"] or model.config["cross_reconstruction"] or model.config["joint_decoder"])
    # faithful autoencoder loss: the scRNA-seq head plays no part in it
    module = faithful.module
    loss, _ = module.autoencoder_loss(torch.randn(5, 30), torch.randn(5, 40))
    loss.backward()
    assert module.encoder.e2[0].weight.grad is None
    assert module.encoder.e1[0].weight.grad is not None


def test_diffusion_phase_trains_the_transformer_and_the_condition_head_only():
    module = CausalGeD(30, 40).module
    module.set_phase("diffusion")
    trainable = {name.split(".")[0] + ("." + name.split(".")[1] if name.startswith("encoder") else "")
                 for name, p in module.named_parameters() if p.requires_grad}
    assert trainable == {"cat", "encoder.e2"}
    module.set_phase("autoencoder")
    assert not any(p.requires_grad for p in module.cat.parameters())
