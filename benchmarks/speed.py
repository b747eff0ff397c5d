"""Speed of the CausalGeD model: training time per epoch and sampling time per step.

Runs the ``cpu`` and ``paper`` presets on the simulated demo data and, when present, on
``../shared/data/osmfish_ssp_cortex``, and writes ``docs/benchmarks-speed.md`` with the machine,
torch version and device. Not a test: timings depend on the machine and on its load (the load
average is recorded). About 5-10 minutes on 2 CPU cores.

- cpu preset: one real training run with the preset's defaults (early stopping on the split's
  validation genes); per-epoch times are means over the epochs of each phase, validation included.
- paper preset: a full run is hours on a CPU, so a few optimiser steps of each phase are timed
  at the memory-aware batch size and scaled to an epoch (steps per epoch x seconds per step).
- sampling: seconds per denoising step for a batch of sequences (gene x sample), with the
  key/value cache, and for the cpu preset also without it and group by group (autoregressive).

Usage: python benchmarks/speed.py [--output docs/benchmarks-speed.md] [--data DIR] [--skip-paper] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import torch

from causalged import preprocess
from causalged.io import read_h5ad, write_text_atomic
from causalged.model import CausalGeD
from causalged.model.data import genes_by_cells, genes_by_spots, metacell_groups, standardize_genes
from causalged.model.training import auto_batch_size

ROOT = Path(__file__).resolve().parents[1]


def load_demo(seed: int = 0):
    from causalged.simulate import simulate

    sc_data, st_data, requested = simulate(size="demo", seed=seed)
    return prepare(sc_data, st_data, requested, seed=seed)


def load_pair(folder: Path, seed: int = 0):
    return prepare(read_h5ad(folder / "sc.h5ad", role="sc"), read_h5ad(folder / "st.h5ad", role="st"), None, seed=seed)


def prepare(sc_data, st_data, requested, *, seed: int):
    """The preprocessing steps in memory, then the split's train/val gene matrices."""
    sc_data, st_data, _ = preprocess.qc(sc_data, st_data)
    sc_data, st_data = preprocess.normalize(sc_data), preprocess.normalize(st_data)
    sc_data, st_data, _ = preprocess.select_hvg(sc_data, st_data, requested_genes=requested)
    split = preprocess.make_gene_splits(list(st_data.var_names), seed=seed)
    return {key: (sc_data[:, split[key]].X, st_data[:, split[key]].X) for key in ("train", "val")}


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": f"{cpu}, {os.cpu_count()} cores", "torch threads": str(torch.get_num_threads()), "gpu": gpu,
            "torch": torch.__version__, "python": platform.python_version(), "os": platform.platform()}


def time_cpu_training(data, name: str, seed: int) -> dict:
    """A real training run of the cpu preset; per-epoch seconds by phase from its history."""
    sc_train, st_train = data["train"]
    model = CausalGeD(st_train.shape[0], sc_train.shape[0], preset="cpu")
    began = time.perf_counter()
    history = model.train(sc_train, st_train, sc_val=data["val"][0], st_val=data["val"][1], device="cpu", seed=seed, progress=False)
    total = time.perf_counter() - began
    by_phase = history.groupby("phase")["seconds"]
    return {"dataset": name, "preset": "cpu", "model": model, "batch": model.train_info["batch_size"],
            "ae_epoch": by_phase.mean().get("autoencoder", math.nan), "diff_epoch": by_phase.mean().get("diffusion", math.nan),
            "diff_step": math.nan, "epochs": f"{len(history)} of {model.config['epochs']} (early stop: {model.train_info['stopped_early']})",
            "total": total, "how": "measured: full run"}


def time_paper_training(data, name: str, seed: int, *, steps: int = 2) -> dict:
    """A few optimiser steps of each phase of the paper preset, scaled to one epoch."""
    sc_train, st_train = data["train"]
    model = CausalGeD(st_train.shape[0], sc_train.shape[0], preset="paper")
    module = model.module.train()
    groups = metacell_groups(sc_train, model.n_columns, seed=seed)
    z_st = torch.from_numpy(standardize_genes(genes_by_spots(st_train))[0])
    z_sc = torch.from_numpy(standardize_genes(genes_by_cells(sc_train, groups, model.n_columns))[0])
    n_genes = z_st.shape[0]
    batch = auto_batch_size(module, model.config["batch_size"], n_genes, torch.device("cpu"))
    optimizer = torch.optim.AdamW(module.parameters(), lr=model.config["lr"])
    generator = torch.Generator().manual_seed(seed)

    def step(loss):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    began = time.perf_counter()
    for start in range(0, n_genes, batch):  # one real autoencoder epoch
        step(module.autoencoder_loss(z_st[start:start + batch], z_sc[start:start + batch], generator=generator)[0])
    ae_epoch = time.perf_counter() - began
    idx = torch.arange(min(batch, n_genes))
    with torch.no_grad():
        mean_st, mean_sc = module.encoder.encode_st(z_st[idx])[0], module.encoder.encode_sc(z_sc[idx])[0]
    began = time.perf_counter()
    for _ in range(steps):
        step(module.diffusion_loss(mean_st, mean_sc, generator=generator))
    per_step = (time.perf_counter() - began) / steps
    return {"dataset": name, "preset": "paper", "model": model, "batch": batch, "ae_epoch": ae_epoch,
            "diff_step": per_step, "diff_epoch": per_step * math.ceil(n_genes / batch), "epochs": f"{steps} timed steps",
            "total": math.nan, "how": f"measured: 1 autoencoder epoch, {steps} diffusion steps (x {math.ceil(n_genes / batch)} steps/epoch)"}


def time_sampling(model: CausalGeD, name: str, *, sequences: int, steps: int, mode: str = "one_group", use_cache: bool = True) -> dict:
    module = model.module.eval()
    z_sc = torch.randn(sequences, model.config["latent_dim"])
    module.sample_latents(z_sc[:2], steps=1, mode=mode, use_cache=use_cache, generator=torch.Generator().manual_seed(0))  # warm-up
    began = time.perf_counter()
    module.sample_latents(z_sc, sampler="ddim", steps=steps, mode=mode, n_groups=4, use_cache=use_cache, generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - began
    groups = 4 if mode == "autoregressive" else 1
    per_step = seconds / (steps * groups)
    return {"dataset": name, "preset": model.config["preset"], "mode": mode, "cache": "yes" if use_cache else "no", "sequences": sequences,
            "step": per_step, "gene": per_step * groups * 50 * 8 / sequences, "full_T": per_step * groups * model.config["n_timesteps"] * 8 / sequences}


def fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}" if value < 100 else f"{value:,.0f}"


def render(info: dict, training: list[dict], sampling: list[dict], notes: list[str], load: tuple[str, str], seconds: float) -> str:
    lines = [
        "# Speed of the CausalGeD model",
        "",
        "Written by `benchmarks/speed.py` (re-run it to refresh; timings depend on the machine and its load).",
        "",
        "## Machine",
        "",
        "| item | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "| device | cpu (no GPU rows: no GPU was available to this run) |" if info["gpu"] == "none" else "| device | cpu rows below; see GPU rows |",
        f"| load average (1 min) before / after | {load[0]} / {load[1]} (other jobs shared the cores: treat timings as upper bounds) |",
        f"| benchmark wall time | {seconds:.0f} s |",
        "",
        "## Training",
        "",
        "Per-epoch times include the validation pass. Autoencoder epochs fit the two-headed",
        "autoencoder; diffusion epochs train the transformer on its frozen latents (preset default",
        "`joint_decoder=False`). The paper preset's diffusion epoch is steps per epoch x the mean",
        "measured step (AR groups drawn as in training, so sequence lengths vary).",
        "",
        "| dataset | train genes | spots | cells (e2 width) | preset | parameters | batch | autoencoder epoch (s) | diffusion step (s) | diffusion epoch (s) | run | total (s) | how |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in training:
        m = r["model"]
        n_params = sum(p.numel() for p in m.module.parameters())
        lines.append(
            f"| {r['dataset']} | {r['genes']} | {m.config['n_spots']} | {m.config['n_cells']} ({m.n_columns}) | {r['preset']} | {n_params / 1e6:.1f} M "
            f"| {r['batch']} | {fmt(r['ae_epoch'])} | {fmt(r['diff_step'])} | {fmt(r['diff_epoch'])} | {r['epochs']} | {fmt(r['total'])} | {r['how']} |"
        )
    lines += [
        "",
        "## Sampling",
        "",
        "Seconds per denoising step for one batch of `sequences` (gene x sample) latents, DDIM.",
        "The last two columns scale that to one gene with 8 samples: DDIM 50 steps (the `impute`",
        "default) and the full T = 2000 chain. Autoregressive mode denoises 4 groups one after",
        "another, each with its own chain (its per-step time is per group-step).",
        "",
        "| dataset | preset | mode | cache | sequences | s / step | s / gene (DDIM 50, 8 samples) | s / gene (full T, 8 samples) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sampling:
        lines.append(f"| {r['dataset']} | {r['preset']} | {r['mode']} | {r['cache']} | {r['sequences']} | {fmt(r['step'])} | {fmt(r['gene'])} | {fmt(r['full_T'])} |")
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks-speed.md")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder holding osmfish_ssp_cortex/")
    parser.add_argument("--skip-paper", action="store_true", help="Only the cpu preset.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine, 2 threads per job made a job ~10x slower)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    load_before = f"{os.getloadavg()[0]:.2f}"
    datasets = {"demo (simulated)": load_demo(args.seed)}
    notes = []
    osmfish = args.data / "osmfish_ssp_cortex"
    if (osmfish / "sc.h5ad").exists():
        datasets["osmFISH SSp cortex"] = load_pair(osmfish, args.seed)
    else:
        notes.append(f"{osmfish} not found: osmFISH rows skipped.")
    training, sampling = [], []
    for name, data in datasets.items():
        genes = f"{data['train'][0].shape[1]} (+{data['val'][0].shape[1]} val)"
        row = time_cpu_training(data, name, args.seed)
        training.append({**row, "genes": genes})
        print(f"[speed] {name} cpu: {row['total']:.1f} s, {row['epochs']}", flush=True)
        for mode, cache in (("one_group", True), ("one_group", False), ("autoregressive", True)):
            sampling.append(time_sampling(row["model"], name, sequences=256, steps=20, mode=mode, use_cache=cache))
        if not args.skip_paper:
            row = time_paper_training(data, name, args.seed)
            training.append({**row, "genes": genes})
            print(f"[speed] {name} paper: {row['diff_step']:.1f} s per diffusion step (batch {row['batch']})", flush=True)
            sampling.append(time_sampling(row["model"], name, sequences=8, steps=2))
    if args.skip_paper:
        notes.append("--skip-paper: paper preset not timed.")
    text = render(machine(), training, sampling, notes, (load_before, f"{os.getloadavg()[0]:.2f}"), time.perf_counter() - began)
    write_text_atomic(text, args.output)
    print(text)


if __name__ == "__main__":
    main()
