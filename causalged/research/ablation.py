"""``causalged ablate``: the paper's ablation claims, measured under the held-out protocol.

The grid varies **one axis at a time** from the faithful default (``causalged``, cpu or paper
preset); every cell sees the same gene folds and seeds, and every model trains until its
validation genes say stop. Cells that only change how a trained model is sampled reuse the
default cell's fit, so the comparison isolates the sampler. Claims (paper section V):

- ``decoder``: not training the decoder with the diffusion helps (Fig. 6);
- ``encoder``: a variational encoder helps slightly (Fig. 7);
- ``ar_decay``: AR step decay 0.8 is best, and accuracy falls as the decay goes to 1.0 (Fig. 8);
- ``depth``: 3 or more transformer blocks are needed (Fig. 9);
- ``sampler``: T, T/2, T/3, T/4 and T/20 sampling steps change PCC by under 1 % (Table II);
- ``mask``: the causal mask is what beats SpaDiT (the no-mask model), the headline claim;
- ``inference`` (no paper number): group-by-group vs one-group sampling of the same model.

Verdicts pair the two settings of a claim on units every setting saw alike (the mean PCC over
one seed and fold's genes): *supported* when the mean difference has the claimed sign beyond
its 95 % t interval, *not supported* when it has the wrong sign beyond it, else *within noise*.
The sampler claim is about a size: every fractional schedule within 1 % of full T sampling.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from causalged.errors import InputError
from causalged.research.benchmark import dataset_name, map_tasks, prepare
from causalged.evaluation.crossval import fit_predict, fold_inputs, method_params
from causalged.evaluation.metrics import pcc, ssim
from causalged import report
from causalged.io import write_csv_atomic, write_text_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    """One cell of the grid: an axis, a label, the method (design) and its keyword arguments."""

    axis: str
    label: str
    params: dict = field(default_factory=dict)
    method: str = "causalged"
    default: bool = False


def grid(n_timesteps: int = 2000) -> list[Setting]:
    """Every axis, the faithful default first; fractional schedules use ``ceil(T / n)`` steps."""
    def ddpm(n: int) -> dict:
        return {"sampler": "ddpm", "steps": -(-n_timesteps // n)}

    return [
        Setting("default", "faithful default", {}, default=True),
        Setting("decoder", "decoder trained jointly", {"joint_decoder": True}),
        Setting("encoder", "deterministic encoder", {"variational": False, "kl_weight": 0.0}),
        *(Setting("ar_decay", f"decay {d}", {"ar_decay": d}) for d in (0.7, 0.9, 1.0)),
        *(Setting("depth", f"depth {k}", {"depth": k}) for k in (1, 2, 4, 5)),
        Setting("sampler", "DDPM T", {"sampler": "ddpm", "steps": None}),
        *(Setting("sampler", f"DDPM T/{n}", ddpm(n)) for n in (2, 3, 4, 20)),
        Setting("sampler", "DDIM 10", {"sampler": "ddim", "steps": 10}),
        Setting("mask", "no causal mask (SpaDiT design)", {}, method="causalged_nomask"),
        Setting("inference", "group by group", {"mode": "autoregressive"}),
    ]


#: What the default is on each axis, for the pages (cpu preset; the paper preset has depth 4).
DEFAULT_LABELS = {"depth": "depth 3", "decoder": "decoder not trained jointly", "encoder": "variational encoder", "ar_decay": "decay 0.8",
                  "sampler": "DDIM 50", "mask": "causal mask", "inference": "one group"}


def run_ablation(datasets: Sequence[str], *, seeds: Sequence[int] = (0, 1), n_folds: int = 5, axes: Sequence[str] | None = None,
                 preset: str = "cpu", device: str = "auto", epochs: int | None = None, n_samples: int = 8, jobs: int = 1,
                 parts: Path | None = None, deadline: float | None = None) -> pd.DataFrame:
    """Per gene, fold, seed, dataset and setting: PCC and SSIM (normalized truth) and seconds.

    With ``parts``, each finished fold is kept there as a CSV and reused by a later run with the
    same settings, so a killed or time-limited run continues where it stopped. No fold starts
    after ``deadline`` (seconds since the epoch).
    """
    run = functools.partial(ablate_seed, n_folds=n_folds, axes=axes, preset=preset, device=device, epochs=epochs,
                            n_samples=n_samples, parts=parts, deadline=deadline)
    tasks = [(dataset, seed) for dataset in datasets for seed in seeds]  # (dataset, seed) tasks keep every worker busy
    tables = [t for t in map_tasks(run, tasks, jobs=jobs) if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)


def settings_for(axes: Sequence[str] | None) -> list[Setting]:
    """The default and the settings of the chosen axes (all axes when ``axes`` is None)."""
    return [s for s in grid() if s.default or axes is None or s.axis in axes]


def ablate_seed(task: tuple[str, int], *, n_folds: int, axes: Sequence[str] | None, preset: str, device: str,
                epochs: int | None, n_samples: int, parts: Path | None = None, deadline: float | None = None) -> pd.DataFrame:
    """The grid on one (dataset, seed), fold by fold (a progress bar per task)."""
    from tqdm.auto import tqdm

    dataset, seed = task
    settings = settings_for(axes)
    name, sc_data, st_data, split = prepare(dataset, seed=seed, n_folds=n_folds)
    tables = []
    for fold in tqdm(range(split["n_folds"]), desc=f"ablation {name} seed {seed}", unit="fold"):
        part = parts / f"{name}_seed{seed}_fold{fold}.csv" if parts else None
        if part is not None and part.exists():
            tables.append(pd.read_csv(part))
        elif deadline is not None and time.time() > deadline:
            log.warning("ablation %s: time limit reached before seed %d fold %d; rerun to continue", name, seed, fold)
            break
        else:
            table = ablate_fold(settings, fold_inputs(sc_data, st_data, split, fold), dataset=name, seed=seed, fold=fold,
                                preset=preset, device=device, epochs=epochs, n_samples=n_samples)
            if part is not None:
                write_csv_atomic(table, part, index=False)
            tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)


COLUMNS = ["dataset", "seed", "fold", "axis", "setting", "gene", "pcc", "ssim", "seconds", "epochs_run", "shared_fit"]


def ablate_fold(settings: Sequence[Setting], inputs: dict, *, dataset: str, seed: int, fold: int, preset: str, device: str,
                epochs: int | None, n_samples: int) -> pd.DataFrame:
    """Every setting on one fold; sampling-only settings reuse the default's fit through ``trained``."""
    rows, trained = [], {}
    for setting in settings:
        extra = {**setting.params, "n_samples": n_samples, **({"epochs": epochs} if epochs else {})}
        params = method_params(setting.method, seed=seed, preset=preset, device=device, overrides={setting.method: extra})
        began = time.perf_counter()
        pred, _, info = fit_predict(setting.method, inputs, params=params, seed=seed, trained=trained)
        seconds = time.perf_counter() - began
        for gene, r, s in zip(inputs["heldout_genes"], pcc(pred, inputs["truth"]), ssim(pred, inputs["truth"])):
            rows.append({"dataset": dataset, "seed": seed, "fold": fold, "axis": setting.axis, "setting": setting.label, "gene": gene,
                         "pcc": r, "ssim": s, "seconds": seconds, "epochs_run": info.get("epochs_run"), "shared_fit": "fit_shared_with" in info})
    return pd.DataFrame(rows, columns=COLUMNS)


# --------------------------------------------------------------------------- verdicts
def unit_means(table: pd.DataFrame, dataset: str, setting: str) -> pd.Series:
    """Mean PCC over the genes of each (seed, fold) for one setting on one dataset.

    A (seed, fold) is the unit of the paired comparisons: every setting saw the same genes
    and seed there, so differences between settings are paired within it, and their spread
    over units holds both the model's seed noise and the gene-set noise.
    """
    rows = table[(table.dataset == dataset) & (table.setting == setting)]
    return rows.groupby(["seed", "fold"])["pcc"].mean()


def t_critical(units: int) -> float:
    """Two-sided 95 % Student t quantile for ``units`` paired differences (``units - 1`` degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.975, max(units - 1, 1)))


def compare(table: pd.DataFrame, dataset: str, better: str, worse: str) -> dict[str, Any]:
    """The claim 'better > worse': mean paired difference over (seed, fold) units, its standard error, and a verdict."""
    a, b = unit_means(table, dataset, better), unit_means(table, dataset, worse)
    diff = (a - b).dropna()
    if diff.empty:
        return {"difference": np.nan, "se": np.nan, "units": 0, "verdict": "not run"}
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
    mean = float(diff.mean())
    if np.isnan(se):
        verdict = "one unit: no spread to judge by"
    elif abs(mean) <= t_critical(len(diff)) * se:
        verdict = "within noise"
    else:
        verdict = "supported" if mean > 0 else "not supported"
    return {"difference": mean, "se": float(se), "units": len(diff), "verdict": verdict}


def sampler_claim(table: pd.DataFrame, dataset: str, *, tolerance: float = 0.01) -> dict[str, Any]:
    """Table II: every fractional schedule within ``tolerance`` (relative PCC) of full-T sampling."""
    full = unit_means(table, dataset, "DDPM T")
    if full.empty:
        return {"difference": np.nan, "se": np.nan, "units": 0, "verdict": "not run"}
    worst, worst_se, units = 0.0, 0.0, 0
    for n in (2, 3, 4, 20):
        frac = unit_means(table, dataset, f"DDPM T/{n}")
        rel = ((frac - full) / full.abs().clip(lower=1e-9)).dropna()
        if len(rel) and abs(rel.mean()) >= abs(worst):
            worst, worst_se = float(rel.mean()), float(rel.std(ddof=1) / np.sqrt(len(rel))) if len(rel) > 1 else np.nan
            units = len(rel)
    if np.isnan(worst_se):
        verdict = "one unit: no spread to judge by"
    elif abs(worst) + t_critical(units) * worst_se < tolerance:
        verdict = "supported"
    elif abs(worst) - t_critical(units) * worst_se > tolerance:
        verdict = "not supported"
    else:
        verdict = "within noise"
    return {"difference": worst, "se": worst_se, "units": units, "verdict": verdict}


#: claim id -> (paper's statement, how it is tested)
CLAIMS = {
    "decoder": ("skipping decoder training generally helps (Fig. 6)", ("faithful default", "decoder trained jointly")),
    "encoder": ("encoder variation helps slightly (Fig. 7)", ("faithful default", "deterministic encoder")),
    "ar_decay_best": ("AR step decay 0.8 is best (Fig. 8)", ("faithful default", "decay 0.7", "decay 0.9", "decay 1.0")),
    "ar_decay_falls": ("accuracy falls as the decay goes to 1.0 (Fig. 8)", ("faithful default", "decay 1.0")),
    "depth": ("3 or more transformer blocks are needed (Fig. 9)", ("faithful default", "depth 1", "depth 2")),
    "sampler": ("T, T/2, T/3, T/4, T/20 steps change PCC by under 1 % (Table II)", ()),
    "mask": ("causal attention is what beats SpaDiT (headline)", ("faithful default", "no causal mask (SpaDiT design)")),
}


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x claim; a claim against several alternatives takes the weakest comparison."""
    out = []
    for dataset in table.dataset.unique():
        for claim, (statement, settings) in CLAIMS.items():
            if claim == "sampler":
                result = sampler_claim(table, dataset)
            else:
                results = [compare(table, dataset, settings[0], other) for other in settings[1:]]
                results = [r for r in results if r["verdict"] != "not run"] or [{"difference": np.nan, "se": np.nan, "units": 0, "verdict": "not run"}]
                order = {"not supported": 0, "within noise": 1, "one unit: no spread to judge by": 1, "supported": 2, "not run": 3}
                result = min(results, key=lambda r: (order[r["verdict"]], r["difference"] if not np.isnan(r["difference"]) else 0))
            out.append({"dataset": dataset, "claim": claim, "statement": statement, **result})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- page and figures
def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset x setting: mean and SD over genes, SD over (seed, fold) units of the mean, wall time per fold (fit and sampling)."""
    per_unit = table.groupby(["dataset", "axis", "setting", "seed", "fold"]).agg(pcc=("pcc", "mean"), ssim=("ssim", "mean")).reset_index()
    genes = table.groupby(["dataset", "axis", "setting"]).agg(pcc=("pcc", "mean"), pcc_gene_sd=("pcc", "std"), ssim=("ssim", "mean"),
                                                              ssim_gene_sd=("ssim", "std"), genes=("gene", "nunique"))
    seeds = per_unit.groupby(["dataset", "axis", "setting"]).agg(pcc_unit_sd=("pcc", "std"), ssim_unit_sd=("ssim", "std"), seeds=("seed", "nunique"))
    seconds = table.drop_duplicates(["dataset", "seed", "fold", "setting"]).groupby(["dataset", "axis", "setting"])["seconds"].mean()
    summary = genes.join(seeds).join(seconds.rename("seconds_per_fold")).reset_index()
    position = {s.label: i for i, s in enumerate(grid())}  # grid order: T, T/2, T/3, T/4, T/20, not alphabetical
    return summary.sort_values(["dataset", "setting"], key=lambda c: c.map(position) if c.name == "setting" else c, ignore_index=True)


def axis_figures(table: pd.DataFrame) -> dict[str, Any]:
    """One bar chart per axis (paper style: PCC per dataset, one bar per setting, SD over units as error bars)."""
    from causalged.evaluation.figures import pyplot

    plt = pyplot()
    summary = summary_table(table)
    default = summary[summary.axis == "default"]
    figures = {}
    for axis in [a for a in summary.axis.unique() if a != "default"]:
        rows = pd.concat([default.assign(setting=DEFAULT_LABELS.get(axis, "faithful default") + " (default)"), summary[summary.axis == axis]])
        datasets, labels = list(rows.dataset.unique()), list(dict.fromkeys(rows.setting))
        if axis in ("ar_decay", "depth"):  # a trend axis: the default bar in its place on the scale
            labels.sort(key=lambda label: float(label.split()[1]))
        fig, ax = plt.subplots(figsize=(3.6 + 1.4 * len(datasets) * len(labels) / 3, 3.2))
        width = 0.8 / len(labels)
        for j, label in enumerate(labels):
            sub = rows[rows.setting == label].set_index("dataset").reindex(datasets)
            ax.bar(np.arange(len(datasets)) + j * width, sub["pcc"], width, yerr=sub["pcc_unit_sd"].fillna(0), capsize=2, label=label)
        ax.set_xticks(np.arange(len(datasets)) + width * (len(labels) - 1) / 2, [d.replace("_", "\n", 1) for d in datasets], fontsize=8)
        ax.set(ylabel="held-out PCC (normalized truth)", title=f"ablation: {axis}")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        figures[axis] = fig
    return figures


def write_figures(table: pd.DataFrame, folder: Path, *, stem: str) -> dict[str, Path]:
    """The axis figures as ``<folder>/<stem>_<axis>.png``."""
    return {axis: report.save_figure(fig, Path(folder) / f"{stem}_{axis}.png") for axis, fig in axis_figures(table).items()}


def write_mqc(table: pd.DataFrame, folder: Path, *, prefix: str = "ablations") -> list[Path]:
    """MultiQC content: ``<prefix>_mqc.tsv`` (verdicts) and one figure section per axis.

    The verdict rows are keyed by dataset and claim, so every sample's table joins one
    ``causalged_ablation`` section; figure sections carry the prefix, one per sample and axis.
    """
    folder = Path(folder)
    claims = verdicts(table)
    rows = claims.assign(Sample=[f"{r.dataset} | {r.claim}" for r in claims.itertuples()])[["Sample", "statement", "difference", "se", "units", "verdict"]]
    paths = [report.write_mqc_table(
        rows, folder / f"{prefix}_mqc.tsv", section_id="causalged_ablation", section_name="Ablations: the paper's claims, measured",
        description="Held-out protocol, normalized truth; one axis at a time from the faithful causalged default. Difference: mean over "
        "paired (seed, fold) units of the claimed-better setting minus the other (sampler: largest relative change); verdict by the 95 % t interval over units.",
        headers={"difference": {"format": "{:,.4f}"}, "se": {"title": "SE over units", "format": "{:,.4f}"}})]
    for axis, fig in axis_figures(table).items():
        paths += report.write_mqc_figure(fig, folder / f"{prefix}_{axis}.png", section_id=f"causalged_ablation_{axis}_{report.slug(prefix)}",
                                         section_name=f"Ablation: {axis} ({prefix})", description="Mean held-out PCC per setting; error bars: SD over units.")
    return paths


def render(table: pd.DataFrame, *, command: str, seeds: Sequence[int], n_folds: int, preset: str, seconds: float, figures: dict,
           finished: dict[str, int] | None = None, parts: Path | None = None) -> str:
    summary, claims = summary_table(table), verdicts(table)
    versions = report.software_versions()
    lines = [
        "# Ablations: the paper's claims, measured",
        "",
        f"Written by `{command}` on {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} ({seconds / 60:.1f} min; fitting and sampling "
        f"of the folds shown took {compute_minutes(table):.0f} CPU-thread minutes in all). "
        f"Versions: {', '.join(f'{k} {v}' for k, v in versions.items())}.",
        "",
        f"**Protocol: held-out genes**, {n_folds}-fold over the shared genes, seeds {list(seeds)} (a seed sets the folds and the "
        f"model's randomness), normalized truth; the faithful `causalged` model, {preset} preset, trained until its validation "
        "genes stop improving. **One axis at a time** is changed from the faithful default; every setting sees the same folds and "
        "seeds. Sampler and inference settings reuse the default's fit (same weights, other sampling).",
        "",
        *coverage_lines(finished or {}, len(seeds) * n_folds, parts),
        "## Verdicts",
        "",
        "Unit = one (seed, fold): the mean PCC over its held-out genes, which every setting saw alike. Difference = mean over "
        "units of (claimed-better setting minus the other); SE = its standard error over units (seed and gene-set noise "
        "together). Supported / not supported: the sign beyond the 95 % t interval (t_{0.975, units-1} SE: 12.7 SE with 2 units, "
        "4.3 with 3, 2.6 with 6); within noise otherwise. For the sampler claim the "
        "difference is the largest relative PCC change of a fractional schedule from full T.",
        "",
        "| dataset | claim (paper) | difference | SE over units | units | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in claims.itertuples():
        unit = " (relative)" if r.claim == "sampler" else ""
        lines.append(f"| {r.dataset} | {r.statement} | {r.difference:+.4f}{unit} | {r.se:.4f} | {r.units} | **{r.verdict}** |")
    lines += ["", "## Every setting", "",
              "| dataset | axis | setting | PCC (mean ± SD over genes) | PCC SD over units | SSIM (mean ± SD over genes) | SSIM SD over units | seconds per fold |",
              "|---|---|---|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(f"| {r.dataset} | {r.axis} | {r.setting} | {r.pcc:.3f} ± {r.pcc_gene_sd:.3f} | {r.pcc_unit_sd:.3f} | "
                     f"{r.ssim:.3f} ± {r.ssim_gene_sd:.3f} | {r.ssim_unit_sd:.3f} | {r.seconds_per_fold:.0f} |")
    if figures:
        lines += ["", "## Figures", "", *(f"![{axis}]({path})" for axis, path in figures.items())]
    lines += ["", "Raw per-gene table: the CSV beside this page.", ""]
    return "\n".join(lines)


def parts_folder(output: Path, config: dict) -> Path:
    """Where finished folds are kept (``<stem>.parts`` beside the page, small enough to commit with it), checked against ``config``.

    Folds made under other settings are never mixed in: the folder records its settings, and a
    run with different ones stops with an error that says what differs and how to go on.
    """
    import json

    folder = output.parent / f"{output.stem}.parts"
    recorded = folder / "settings.json"
    if recorded.exists():
        before = json.loads(recorded.read_text())
        changed = sorted(k for k in set(before) | set(config) if before.get(k) != config.get(k))
        if changed:
            differs = "; ".join(f"{k}: {before.get(k)!r} then, {config.get(k)!r} now" for k in changed)
            raise InputError(folder, f"its finished folds were made with other settings ({differs})",
                             "delete the folder to start afresh, or choose another --output")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json.dumps(config, indent=1), recorded)
    return folder


def coverage(table: pd.DataFrame, datasets: Sequence[str]) -> dict[str, int]:
    """Finished folds per dataset (every setting of a fold finishes together); 0 for a dataset none finished on."""
    done = table.drop_duplicates(["dataset", "seed", "fold"]).groupby("dataset").size()
    return {name: int(done.get(name, 0)) for name in map(dataset_name, datasets)}


def compute_minutes(table: pd.DataFrame) -> float:
    """Fitting and sampling time of every (dataset, seed, fold, setting) in the table, in minutes."""
    return float(table.drop_duplicates(["dataset", "seed", "fold", "setting"])["seconds"].sum() / 60)


def coverage_lines(finished: dict[str, int], planned: int, parts: Path | None) -> list[str]:
    """What part of the grid the page stands on; a partial grid says so before any number."""
    if all(n == planned for n in finished.values()):
        return [f"Complete: {planned} folds (seeds x folds) per dataset.", ""]
    done = ", ".join(f"{name} {n} of {planned}" for name, n in finished.items())
    return [f"**Partial grid** (stopped by the time limit): folds finished per dataset: {done}. Every finished fold holds every "
            f"setting, so the comparisons stay paired; rerun the same command to continue (finished folds are kept in "
            f"`{parts.name if parts else 'the parts folder'}` beside this page).", ""]


def ablate(datasets: Sequence[str], *, output: Path, seeds: Sequence[int] = (0, 1), n_folds: int = 5, axes: Sequence[str] | None = None,
           preset: str = "cpu", device: str = "auto", epochs: int | None = None, n_samples: int = 8, command: str = "causalged ablate",
           jobs: int = 1, time_limit: float | None = None, mqc_dir: Path | None = None) -> Path:
    """Run the grid (continuing from kept folds), then write the page, its CSV and one figure per axis.

    ``time_limit`` (minutes): no fold starts after it; the page then says how far the grid got,
    and the same command continues it. ``time_limit=0`` writes the page from the kept folds only.
    ``mqc_dir``: also write the verdicts and figures there as MultiQC content, named after the page.
    """
    started = time.perf_counter()
    output = Path(output)
    config = {"n_folds": n_folds, "preset": preset, "epochs": epochs, "n_samples": n_samples,
              "settings": [s.label for s in settings_for(axes)]}
    parts = parts_folder(output, config)
    deadline = time.time() + 60 * time_limit if time_limit is not None else None
    table = run_ablation(datasets, seeds=seeds, n_folds=n_folds, axes=axes, preset=preset, device=device, epochs=epochs, n_samples=n_samples,
                         jobs=jobs, parts=parts, deadline=deadline)
    if table.empty:
        raise ValueError(f"no fold of the ablation finished within --time-limit {time_limit} min; give it more time")
    write_csv_atomic(table, output.with_suffix(".csv"), index=False)
    figures = write_figures(table, output.parent / "figures", stem=output.stem)
    text = render(table, command=command, seeds=seeds, n_folds=n_folds, preset=preset, seconds=time.perf_counter() - started,
                  figures={k: v.relative_to(output.parent).as_posix() for k, v in figures.items()},
                  finished=coverage(table, datasets), parts=parts)
    if mqc_dir is not None:
        write_mqc(table, mqc_dir, prefix=output.stem)
    return write_text_atomic(text, output)
