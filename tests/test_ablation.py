"""`causalged ablate`: the grid, each switch reaching the model, the verdicts, and a tiny run on the demo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from click.testing import CliRunner

from causalged.cli import cli
from causalged.methods import get_imputer
from causalged.model import CausalGeD
from causalged.model.masks import group_count_probabilities
from causalged.research.ablation import CLAIMS, compare, grid, sampler_claim, verdicts

ablate = cli.commands["ablate"]  # the registered command, wherever its module lives


def test_grid_covers_every_axis_of_the_issue():
    settings = grid()
    by_axis = {}
    for s in settings:
        by_axis.setdefault(s.axis, []).append(s)
    assert [s.label for s in by_axis["default"]] == ["faithful default"] and sum(s.default for s in settings) == 1
    assert {s.params["ar_decay"] for s in by_axis["ar_decay"]} == {0.7, 0.9, 1.0}  # 0.8 is the default
    assert {s.params["depth"] for s in by_axis["depth"]} == {1, 2, 4, 5}  # 3 is the cpu default
    assert {s.params.get("steps") for s in by_axis["sampler"] if s.params["sampler"] == "ddpm"} == {None, 1000, 667, 500, 100}
    assert any(s.params == {"sampler": "ddim", "steps": 10} for s in by_axis["sampler"])
    assert by_axis["mask"][0].method == "causalged_nomask"
    assert by_axis["inference"][0].params == {"mode": "autoregressive"}
    assert by_axis["decoder"][0].params == {"joint_decoder": True}
    assert by_axis["encoder"][0].params["variational"] is False
    assert set(CLAIMS) == {"decoder", "encoder", "ar_decay_best", "ar_decay_falls", "depth", "sampler", "mask"}


def test_every_switch_reaches_the_built_model():
    base = CausalGeD(30, 40, method="causalged")
    assert base.module.cat.causal and len(base.module.cat.blocks) == 3 and base.module.encoder.variational
    assert not CausalGeD(30, 40, method="causalged_nomask").module.cat.causal
    assert len(CausalGeD(30, 40, depth=5).module.cat.blocks) == 5
    assert CausalGeD(30, 40, variational=False).module.encoder.to_logvar is None
    assert CausalGeD(30, 40, ar_decay=1.0).module.ar_decay == 1.0
    assert torch.allclose(group_count_probabilities(16, 1.0), torch.full((16,), 1 / 16, dtype=torch.float64))
    assert not torch.allclose(group_count_probabilities(16, 0.7), group_count_probabilities(16, 0.9))
    # decoder training: the joint phase updates the decoder with the diffusion loss, the default never does
    from causalged.model.training import TrainSettings, phase_plan

    assert set(phase_plan(TrainSettings(epochs=10, batch_size=4, lr=1e-3, joint_decoder=True))) == {"joint"}
    assert phase_plan(TrainSettings(epochs=10, batch_size=4, lr=1e-3, ae_fraction=0.2)) == ["autoencoder"] * 2 + ["diffusion"] * 8
    # sampler settings reach the sampler: the number of network calls is the number of steps
    imputer = get_imputer("causalged", epochs=2, device="cpu", n_samples=1, sampler="ddpm", steps=7)
    rng = np.random.default_rng(0)
    imputer.fit(rng.gamma(1, 1, (40, 12)), rng.gamma(1, 1, (30, 12)))
    calls = []
    real = imputer.model_.module.cat.denoise_cached
    imputer.model_.module.cat.denoise_cached = lambda *a, **k: calls.append(1) or real(*a, **k)
    imputer.predict(rng.gamma(1, 1, (40, 2)))
    assert len(calls) == 7


def _table(diffs_by_seed: dict[str, list[float]], base: float = 0.3) -> pd.DataFrame:
    rows = []
    for setting, values in diffs_by_seed.items():
        for seed, value in enumerate(values):
            for gene in range(3):
                rows.append({"dataset": "d", "seed": seed, "fold": 0, "axis": "x", "setting": setting, "gene": f"g{gene}",
                             "pcc": base + value, "ssim": 0.2, "seconds": 1.0})
    return pd.DataFrame(rows)


def test_settings_are_listed_in_grid_order_not_alphabetically():
    from causalged.research.ablation import summary_table

    table = _table({label: [0.0] for label in ("DDPM T/20", "DDPM T/4", "DDPM T", "faithful default", "DDPM T/2", "DDPM T/3")})
    assert list(summary_table(table).setting) == ["faithful default", "DDPM T", "DDPM T/2", "DDPM T/3", "DDPM T/4", "DDPM T/20"]


def test_verdicts_follow_the_sign_beyond_the_seed_spread():
    table = _table({"faithful default": [0.0, 0.0, 0.0], "decoder trained jointly": [0.05, 0.06, 0.04], "deterministic encoder": [-0.05, -0.04, -0.06],
                    "no causal mask (SpaDiT design)": [0.01, -0.01, 0.0]})
    assert compare(table, "d", "faithful default", "decoder trained jointly")["verdict"] == "not supported"  # wrong sign, beyond noise
    assert compare(table, "d", "faithful default", "deterministic encoder")["verdict"] == "supported"
    assert compare(table, "d", "faithful default", "no causal mask (SpaDiT design)")["verdict"] == "within noise"
    claims = verdicts(table).set_index("claim")["verdict"]
    assert claims["decoder"] == "not supported" and claims["encoder"] == "supported" and claims["mask"] == "within noise"
    assert claims["depth"] == "not run"
    # two units: a difference of 4 standard errors is still within the 95 % t interval (t = 12.7 at 1 degree of freedom)
    two = _table({"faithful default": [0.0, 0.0], "deterministic encoder": [-0.05, -0.03]})
    result = compare(two, "d", "faithful default", "deterministic encoder")
    assert result["units"] == 2 and np.isclose(result["difference"] / result["se"], 4.0) and result["verdict"] == "within noise"


def test_sampler_claim_is_about_size():
    small = _table({"DDPM T": [0.0, 0.0, 0.0], **{f"DDPM T/{n}": [0.001, 0.0, 0.0005] for n in (2, 3, 4, 20)}})
    large = _table({"DDPM T": [0.0, 0.0, 0.0], "DDPM T/2": [0.0, 0.0, 0.0], "DDPM T/3": [0.0, 0.0, 0.0], "DDPM T/4": [0.0, 0.0, 0.0],
                    "DDPM T/20": [-0.05, -0.06, -0.05]})
    assert sampler_claim(small, "d")["verdict"] == "supported"
    assert sampler_claim(large, "d")["verdict"] == "not supported"


def test_tiny_grid_on_the_demo_writes_page_csv_and_figures(tmp_path):
    out = tmp_path / "ablations.md"
    res = CliRunner().invoke(ablate, ["demo", "--output", str(out), "--seeds", "0,1", "--n-folds", "2", "--axes", "mask,inference",
                                      "--model-epochs", "4", "--n-samples", "2", "--mqc-dir", str(tmp_path / "mqc")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "Protocol: held-out genes" in text and "One axis at a time" in text
    table = pd.read_csv(out.with_suffix(".csv"))
    assert set(table.setting) == {"faithful default", "no causal mask (SpaDiT design)", "group by group"}
    assert table.groupby("setting")["gene"].nunique().nunique() == 1  # every setting scored on the same genes
    assert table[table.setting == "group by group"]["shared_fit"].all() and not table[table.setting == "faithful default"]["shared_fit"].any()
    mask_row = verdicts(table).set_index("claim").loc["mask"]
    assert f"**{mask_row.verdict}**" in text and "| demo (simulated) | causal attention is what beats SpaDiT (headline) |" in text
    for axis in ("mask", "inference"):
        assert (tmp_path / "figures" / f"ablations_{axis}.png").stat().st_size > 1000
        assert "data:image/png;base64," in (tmp_path / "mqc" / f"ablations_{axis}_mqc.html").read_text()
    mqc = (tmp_path / "mqc" / "ablations_mqc.tsv").read_text()
    assert "# id: 'causalged_ablation'" in mqc and f"demo (simulated) | mask\t" in mqc and mask_row.verdict in mqc
    bad = CliRunner().invoke(cli, ["ablate", "demo", "--axes", "colour"])  # as a user runs it: one line, exit 2
    assert bad.exit_code == 2 and "unknown axes ['colour']" in bad.output


def test_finished_folds_are_kept_and_a_time_limited_run_says_how_far_it_got(tmp_path):
    out = tmp_path / "ablations.md"
    args = ["demo", "--output", str(out), "--seeds", "0", "--n-folds", "2", "--axes", "inference", "--model-epochs", "3", "--n-samples", "1"]
    assert CliRunner().invoke(ablate, args, catch_exceptions=False).exit_code == 0
    parts = tmp_path / "ablations.parts"
    kept = sorted(p.name for p in parts.glob("*.csv"))
    assert kept == ["demo (simulated)_seed0_fold0.csv", "demo (simulated)_seed0_fold1.csv"]
    first = pd.read_csv(out.with_suffix(".csv"))
    assert "Complete: 2 folds" in out.read_text()
    # fold 1 lost, and no time left: fold 0 comes back from its part, fold 1 is not started
    (parts / kept[1]).unlink()
    res = CliRunner().invoke(ablate, [*args, "--time-limit", "0.000001"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "**Partial grid**" in text and "demo (simulated) 1 of 2" in text
    partial = pd.read_csv(out.with_suffix(".csv"))
    assert set(partial.fold) == {0}
    pd.testing.assert_frame_equal(partial, first[first.fold == 0].reset_index(drop=True))
    # other settings never mix with the kept folds
    other = CliRunner().invoke(ablate, [*args[:-1], "2"])
    assert other.exit_code != 0 and "other settings" in str(other.exception or other.output) and "n_samples" in str(other.exception or other.output)
