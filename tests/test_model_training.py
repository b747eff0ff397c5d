"""Training behaviour of CausalGeD: overfitting, save/load, exact resume, devices, CLI."""

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from click.testing import CliRunner

from causalged.device import resolve_device
from causalged.errors import InputError
from causalged.model import CausalGeD
from causalged.model import training as training_module
from causalged.cli import cli

impute, train = cli.commands["impute"], cli.commands["train"]
from causalged.model.training import lr_factor

torch.set_num_threads(1)

TINY = dict(latent_dim=8, n_tokens=4, n_cond=2, hidden=32, depth=1, heads=2, enc_hidden=32, n_timesteps=100,
            batch_size=12, lr=3e-3, validation_fraction=0.0)


@pytest.fixture(scope="module")
def data():
    """12 genes over 30 cells and 20 spots; spots are a fixed mix of cells."""
    rng = np.random.default_rng(0)
    n_genes, n_spots, n_cells = 16, 20, 30
    mix = rng.normal(size=(n_cells, n_spots)) / np.sqrt(n_cells)
    sc_data = rng.gamma(1.0, 1.0, size=(n_cells, n_genes)).astype(np.float32)
    st_data = np.maximum(mix.T @ sc_data, 0).astype(np.float32)
    return sc_data, st_data


def test_tiny_model_overfits(data):
    sc_data, st_data = data
    model = CausalGeD(20, 30, variational=False, kl_weight=0.0, **TINY)
    history = model.train(sc_data[:, :12], st_data[:, :12], epochs=800, progress=False)
    for phase, factor in (("autoencoder", 100), ("diffusion", 5)):
        loss = history.loc[history["phase"] == phase, "train_loss"].to_numpy()
        assert loss[:5].mean() / loss[-5:].mean() > factor, phase


def test_save_load_gives_identical_predictions(data, tmp_path):
    sc_data, st_data = data
    model = CausalGeD(20, 30, **TINY)
    model.train(sp.csr_matrix(sc_data[:, :12]), st_data[:, :12], epochs=6, progress=False)
    mean, samples = model.impute(sp.csr_matrix(sc_data[:, 12:]), n_samples=3, steps=5, seed=4)
    assert mean.shape == (20, 4) and samples.shape == (3, 20, 4) and (samples >= 0).all()
    model.save(tmp_path / "m")
    loaded = CausalGeD.load(tmp_path / "m")
    mean2, samples2 = loaded.impute(sc_data[:, 12:], n_samples=3, steps=5, seed=4)
    assert np.array_equal(samples, samples2) and np.array_equal(mean, mean2)
    assert loaded.train_info["device"] == "cpu" and len(loaded.history) == 6
    ar_mean, _ = loaded.impute(sc_data[:, 12:], n_samples=2, steps=3, mode="autoregressive", n_groups=2, sampler="ddpm")
    assert np.isfinite(ar_mean).all()


def test_resume_ends_where_uninterrupted_run_ends(data, tmp_path, monkeypatch):
    sc_data, st_data = data
    options = dict(TINY, validation_fraction=0.25)

    def run(checkpoints, resume=False):
        model = CausalGeD(20, 30, **options)
        model.train(sc_data, st_data, epochs=7, checkpoint_dir=checkpoints, checkpoint_every=2, resume=resume, seed=3, progress=False)
        return model

    full = run(tmp_path / "full")
    real_epoch, calls = training_module._run_epoch, []

    def killed_in_epoch_6(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training_module, "_run_epoch", killed_in_epoch_6)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed")
    monkeypatch.setattr(training_module, "_run_epoch", real_epoch)
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=False)["state"]["epoch"] == 4
    resumed = run(tmp_path / "killed", resume=True)
    full_state, resumed_state = full.module.state_dict(), resumed.module.state_dict()
    assert all(torch.equal(full_state[k], resumed_state[k]) for k in full_state)
    pd.testing.assert_frame_equal(full.history.drop(columns="seconds"), resumed.history.drop(columns="seconds"))


def test_cuda_without_gpu_is_a_clear_error(data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(InputError, match="--device cpu"):
        CausalGeD(20, 30, **TINY).train(data[0], data[1], device="cuda", progress=False)
    assert resolve_device("auto").type == "cpu"


def test_lr_schedule_keeps_a_floor_and_presets_check_options():
    factors = [lr_factor(step, 1000, warmup_fraction=0.05, min_fraction=0.1) for step in range(1000)]
    assert factors[0] > 0 and max(factors) == pytest.approx(1.0) and factors[-1] == pytest.approx(0.1)
    assert min(factors[500:]) >= 0.1 and factors[750] > 0.2  # still learning in the last quarter
    with pytest.raises(TypeError, match="unknown CausalGeD option"):
        CausalGeD(20, 30, hiddden=3)
    paper = CausalGeD(20, 30, preset="paper")
    assert (paper.config["hidden"], paper.config["heads"], paper.config["depth"], paper.config["latent_dim"]) == (1024, 16, 4, 256)
    assert paper.config["batch_size"] == 64 and paper.config["n_timesteps"] == 2000 and paper.config["ar_decay"] == 0.8


def test_large_reference_is_pooled_into_metacells(data):
    sc_data, st_data = data
    model = CausalGeD(20, 30, max_cells=8, **TINY)
    model.train(sp.csr_matrix(sc_data[:, :12]), st_data[:, :12], epochs=3, progress=False)
    assert model.n_columns == 8 and model.cell_groups.shape == (30,) and model.cell_groups.max() < 8
    assert model.module.encoder.e2[0].in_features == 8
    mean, _ = model.impute(sp.csr_matrix(sc_data[:, 12:]), n_samples=2, steps=3)
    assert mean.shape == (20, 4)


def test_cli_train_and_impute(data, tmp_path):
    sc_data, st_data = data
    genes = [f"g{i}" for i in range(16)]
    shared, targets = genes[:12], genes[12:]
    sc_ad = ad.AnnData(sp.csr_matrix(sc_data), obs=pd.DataFrame(index=[f"c{i}" for i in range(30)]), var=pd.DataFrame(index=genes))
    sc_ad.var["causalged_target"] = [g in targets for g in genes]
    st_ad = ad.AnnData(st_data[:, :12], obs=pd.DataFrame(index=[f"s{i}" for i in range(20)]), var=pd.DataFrame(index=shared))
    st_ad.obsm["spatial"] = np.random.default_rng(0).uniform(size=(20, 2))
    st_ad.layers["counts"] = np.round(np.expm1(st_ad.X))
    sc_ad.write_h5ad(tmp_path / "s.sc.hvg.h5ad")
    st_ad.write_h5ad(tmp_path / "s.st.hvg.h5ad")
    split = {"seed": 0, "shared_genes": shared, "target_genes": targets, "train": shared[:8], "val": shared[8:10], "test": shared[10:],
             "n_folds": 2, "folds": [shared[:6], shared[6:]]}
    (tmp_path / "s.split.json").write_text(json.dumps(split))
    inputs = ["--sample", "s", "--sc", str(tmp_path / "s.sc.hvg.h5ad"), "--st", str(tmp_path / "s.st.hvg.h5ad")]
    runner = CliRunner()
    for method in ("causalged", "spot_depth"):
        out = tmp_path / method
        result = runner.invoke(train, [*inputs, "--split", str(tmp_path / "s.split.json"), "--outdir", str(out), "--method", method,
                                       "--epochs", "4", "--device", "cpu"])
        assert result.exit_code == 0, result.output
        config = json.loads((out / "s.model" / "config.json").read_text())
        assert config["method"] == method and config["data"]["train_genes"] == shared[:8]
        assert config["data"]["fit_genes"] == shared  # production fits every measured gene, test genes included
        result = runner.invoke(impute, [*inputs, "--model", str(out / "s.model"), "--outdir", str(out), "--n-samples", "3", "--steps", "4"])
        assert result.exit_code == 0, result.output
        imputed = ad.read_h5ad(out / "s.imputed.h5ad")
        assert imputed.shape == (20, 4) and list(imputed.var_names) == targets
        assert imputed.layers["std"].shape == (20, 4) and np.isnan(imputed.var["expected_pcc"]).all()
        assert np.allclose(imputed.obsm["spatial"], st_ad.obsm["spatial"])
        assert imputed.uns["causalged"]["impute"]["method"] == method and imputed.uns["causalged"]["impute"]["n_samples"] == 3
    model_dir = tmp_path / "causalged" / "s.model"
    assert (tmp_path / "causalged" / "s.training_mqc.json").exists() and (tmp_path / "causalged" / "s.training_pcc_mqc.json").exists()
    assert (model_dir / "checkpoints" / "last.pt").exists() and (model_dir / "checkpoints" / "refit" / "last.pt").exists()
    log, refit = pd.read_csv(model_dir / "training_log.csv"), pd.read_csv(model_dir / "refit_log.csv")
    assert log["val_pcc"].notna().any() and len(refit) == json.loads((model_dir / "config.json").read_text())["training"]["best_epoch"]
    impute_info = ad.read_h5ad(tmp_path / "causalged" / "s.imputed.h5ad").uns["causalged"]["impute"]
    assert impute_info["mode"] == "one_group" and 0.0 <= impute_info["clipped_fraction"] <= 1.0
