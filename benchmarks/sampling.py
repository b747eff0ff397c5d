"""Sampling soundness of the faithful CausalGeD model: diffusion target x sampler -> docs/benchmarks-sampling.md.

For each diffusion target (noise "eps", as the paper says, and velocity "v", our default) one
faithful `causalged` model (cpu preset) is trained on fold 0 of a dataset under the held-out
protocol, then sampled with several samplers. The table gives the held-out PCC (normalized
truth) and the share of clean-estimate entries the sampler's safety clip (|x0| <= 10 latent
SDs) had to touch, which is what decides the default target. Usage:

    python benchmarks/sampling.py [demo | DATASET_FOLDER ...] [--output docs/benchmarks-sampling.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import torch

from causalged.research.benchmark import prepare
from causalged.evaluation.crossval import fold_inputs
from causalged.evaluation.metrics import pcc
from causalged.io import write_text_atomic
from causalged.methods import get_imputer

SAMPLERS = [("ddim", 10), ("ddim", 50), ("ddpm", 100), ("ddpm", 500)]


def measure(dataset: str, prediction: str, *, n_samples: int) -> list[dict]:
    name, sc_data, st_data, split = prepare(dataset, seed=0, n_folds=10 if dataset != "demo" else 5)
    fold = fold_inputs(sc_data, st_data, split, 0)
    started = time.perf_counter()
    imputer = get_imputer("causalged", device="cpu", seed=0, prediction=prediction).fit(fold["sc_train"], fold["st_train"])
    fit_s = time.perf_counter() - started
    rows = []
    for sampler, steps in SAMPLERS:
        for mode in ("one_group", "autoregressive"):
            imputer.params.update(sampler=sampler, steps=steps, mode=mode)
            began = time.perf_counter()
            mean, _ = imputer.predict_with_samples(fold["sc_heldout"], n_samples=n_samples, seed=0)
            rows.append({"dataset": name, "prediction": prediction, "sampler": f"{sampler} {steps} steps", "mode": mode,
                         "pcc": float(np.nanmean(pcc(mean, fold["truth"]))), "clipped": imputer.info_["clipped_fraction"],
                         "epochs": imputer.info_["epochs_run"], "fit_s": fit_s, "sample_s": time.perf_counter() - began,
                         "n_heldout": fold["truth"].shape[1]})
    return rows


def render(rows: list[dict], command: str, n_samples: int) -> str:
    lines = ["# Sampling soundness of the faithful model", "", f"Written by `{command}` on {dt.date.today()}; "
             f"{n_samples} samples per gene, their mean scored. **Protocol: held-out genes**, fold 0 only (a quick check of the "
             "sampler, not an accuracy benchmark: see docs/benchmarks.md), normalized truth, mean PCC over the fold's genes.", "",
             "| dataset | target | sampler | inference | held-out PCC | clipped entries | epochs | fit s | sampling s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} ({r['n_heldout']} genes) | {r['prediction']} | {r['sampler']} | {r['mode']} | {r['pcc']:.3f} | "
                     f"{100 * r['clipped']:.2f} % | {r['epochs']} | {r['fit_s']:.0f} | {r['sample_s']:.1f} |")
    by_target = {p: [r["clipped"] for r in rows if r["prediction"] == p] for p in dict.fromkeys(r["prediction"] for r in rows)}
    lines += ["", "Share of clipped entries, worst case per target: "
              + "; ".join(f"{p}: {100 * max(v):.2f} %" for p, v in by_target.items()) + ".", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=["demo"])
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks-sampling.md"))
    parser.add_argument("--n-samples", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row for dataset in args.datasets for prediction in ("eps", "v") for row in measure(dataset, prediction, n_samples=args.n_samples)]
    command = "python benchmarks/sampling.py " + " ".join(args.datasets)
    print(write_text_atomic(render(rows, command, args.n_samples), args.output))


if __name__ == "__main__":
    main()
