"""Cost of every pipeline step from the demo to atlas size: docs/benchmarks-scale.md.

A ladder of simulated pairs (``causalged simulate --n-cells ... --n-spots ... --n-genes ...
--panel-fraction ...``), and on each rung every step of the default route without evaluation
(qc, normalize, hvg, train, impute), plus one cross-validation fold of the default method (the
evaluation costs n_folds of those). Each step runs as its own process (``python -m
causalged.cli <step>``), so its wall time and peak resident memory (``wait4``'s ``ru_maxrss``)
are its own. A step stopped by the time or memory limit is marked so in the table, and the
rung's later steps are not run (their input is missing). Then two whole runs that issue 11
sets targets for: ``causalged run`` on the committed test data and on the osmFISH pair
(``../shared/data/osmfish_ssp_cortex``) with the default evaluation set.

The log-log slope of time against cells x spots is fitted per step over the rungs from 10^4
cells upward that share one gene count (so only the size moves). No GPU is used (CPU route).

Usage: nice -n 10 python benchmarks/scale.py [--output docs/benchmarks-scale.md] [--time-limit 300]
       [--memory-limit-gb 10] [--rungs demo,r1,...] [--workdir DIR] [--skip-runs] [--render-only DIR/results.json]
       [--reuse --keep-data --until STEP]  (measure a long rung in parts: rerun with --reuse to go on)
Set PYTHONPATH to a snapshot of the code (``git archive HEAD``) to measure a commit while the
checkout changes; the page records the commit it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OSMFISH = ROOT.parent / "shared" / "data" / "osmfish_ssp_cortex"


@dataclass(frozen=True)
class Rung:
    name: str
    n_cells: int | None  # None: the named demo size
    n_spots: int | None
    n_genes: int | None
    panel_fraction: float | None
    base_mean: float | None = None  # the simulator's sparsity (None: its default, about 21 % non-zero)
    limits: tuple[float, float] | None = None  # (seconds, GB) per step instead of the command line's

    @property
    def options(self) -> list[str]:
        if self.n_cells is None:
            return ["--size", "demo"]
        sparsity = [] if self.base_mean is None else [f"--base-mean={self.base_mean}"]
        return ["--n-cells", str(self.n_cells), "--n-spots", str(self.n_spots), "--n-genes", str(self.n_genes),
                "--panel-fraction", str(self.panel_fraction), *sparsity]


#: The demo, four rungs at a fixed 2,000-gene reference and 300-gene panel (the slope), the
#: issue's 30k x 14.4k pair among them and two above the default's metacell limit (r3, r4: the
#: fit pools the reference), and the atlas target: 10^6 cells x 10^5 spots, 20,000 genes,
#: 5,000-gene panel, at droplet sparsity (about 8 % non-zero) and under the target's own limits:
#: 60 minutes (simulation: 90) and 16 GB per step.
ATLAS_LIMITS = (3600.0, 16.0)
RUNGS = {
    "demo": Rung("demo", None, None, None, None),
    "r1": Rung("r1", 10_000, 2_500, 2_000, 0.15),
    "r2": Rung("r2", 30_000, 14_400, 2_000, 0.15),
    "r3": Rung("r3", 100_000, 30_000, 2_000, 0.15),
    "r4": Rung("r4", 300_000, 30_000, 2_000, 0.15),
    "atlas": Rung("atlas", 1_000_000, 100_000, 20_000, 0.25, base_mean=-4.5, limits=ATLAS_LIMITS),
}
STEPS = ("simulate", "qc", "normalize", "hvg", "train", "impute", "crossval (1 fold)")


def run_limited(args: list[str], *, env: dict, time_limit: float, memory_limit: float, log_path: Path) -> dict:
    """Run one process under a wall-time and resident-memory limit; its wall time, peak RSS and fate."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        polled, status = 0, None
        while True:
            pid, code, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(code)
                break
            polled = max(polled, _rss(proc.pid))
            elapsed = time.perf_counter() - start
            if elapsed > time_limit or polled > memory_limit:
                status = f"stopped: time limit {time_limit:.0f} s" if elapsed > time_limit else f"stopped: memory limit {memory_limit / 2**30:.0f} GB"
                proc.kill()
                _, code, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(code)
                break
            time.sleep(0.2)
    seconds = time.perf_counter() - start
    peak = max(polled, usage.ru_maxrss * 1024)
    if status is None:
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode}; see the log)"
    return {"seconds": seconds, "peak_rss": peak, "status": status}


def _rss(pid: int) -> int:
    """Resident bytes of a running process (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def step_commands(rung: Rung, folder: Path) -> list[tuple[str, list[str]]]:
    """The command lines of one rung, as `causalged run --skip-evaluation` runs them (default method)."""
    s, d = "scale", folder
    hvg = ["--sc", str(d / "hvg" / f"{s}.sc.hvg.h5ad"), "--st", str(d / "hvg" / f"{s}.st.hvg.h5ad")]
    split = ["--split", str(d / "hvg" / f"{s}.split.json")]
    return [
        ("simulate", ["simulate", "--outdir", str(d / "data"), "--name", s, *rung.options]),
        ("qc", ["qc", "--sample", s, "--sc", str(d / "data" / f"{s}_sc.h5ad"), "--st", str(d / "data" / f"{s}_st.h5ad"), "--outdir", str(d / "qc")]),
        ("normalize", ["normalize", "--sample", s, "--sc", str(d / "qc" / f"{s}.sc.qc.h5ad"), "--st", str(d / "qc" / f"{s}.st.qc.h5ad"),
                       "--outdir", str(d / "normalize")]),
        ("hvg", ["hvg", "--sample", s, "--sc", str(d / "normalize" / f"{s}.sc.norm.h5ad"), "--st", str(d / "normalize" / f"{s}.st.norm.h5ad"),
                 "--outdir", str(d / "hvg"), "--genes", str(d / "data" / f"{s}_genes.txt")]),
        ("train", ["train", "--sample", s, *hvg, *split, "--outdir", str(d / "train")]),
        ("impute", ["impute", "--sample", s, *hvg, "--model", str(d / "train" / f"{s}.model"), "--outdir", str(d / "impute"), "--device", "cpu"]),
        ("crossval (1 fold)", ["crossval", "--sample", s, *hvg, *split, "--fold", "0", "--methods", "knn_ridge_blend", "--device", "cpu",
                               "--outdir", str(d / "crossval")]),
    ]


def measure_rung(rung: Rung, workdir: Path, *, env: dict, time_limit: float, memory_limit: float, reuse: bool = False,
                 until: str | None = None, keep_data: bool = False) -> dict[str, dict]:
    """Run a rung's steps in order. With ``reuse`` a step whose finished result is on record in
    the rung's folder (``<step>.json``, outputs beside it) is not run again, so a long rung can be
    measured in parts; ``until`` stops after that step, ``keep_data`` keeps the simulated pair."""
    folder = workdir / rung.name
    if not reuse:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    if rung.limits:
        time_limit, memory_limit = rung.limits[0], rung.limits[1] * 2**30
    results, blocked = {}, None
    for name, args in step_commands(rung, folder):
        record = folder / f"{name.split()[0]}.json"
        if blocked:
            results[name] = {"seconds": math.nan, "peak_rss": math.nan, "status": f"not run ({blocked})"}
            continue
        if reuse and record.exists() and json.loads(record.read_text())["status"] == "ok":
            results[name] = json.loads(record.read_text())
        else:
            limit = time_limit * (1.5 if name == "simulate" and rung.limits else 1)
            results[name] = run_limited([sys.executable, "-m", "causalged.cli", *args], env=env, time_limit=limit,
                                        memory_limit=memory_limit, log_path=folder / f"{name.split()[0]}.log")
            record.write_text(json.dumps(results[name], default=float))
        print(f"{rung.name} {name}: {results[name]}", flush=True)
        if results[name]["status"] != "ok" and name != "crossval (1 fold)":
            blocked = f"{name} {results[name]['status'].split(':')[0].split(' (')[0]}"
        if name == until:
            blocked = f"stopped after {until}"
    results["shape"] = _shape(folder)
    if not keep_data:
        shutil.rmtree(folder / "data", ignore_errors=True)  # the big inputs go; the logs stay for the record
    return results


def _shape(folder: Path) -> dict:
    """Cells, spots, genes and non-zeros of the simulated pair, read from the files' headers."""
    import h5py

    out = {}
    for role in ("sc", "st"):
        path = folder / "data" / f"scale_{role}.h5ad"
        if path.exists():
            with h5py.File(path) as handle:
                out[role] = {"shape": [int(v) for v in handle["X"].attrs["shape"]], "nnz": int(handle["X"]["data"].shape[0]),
                             "bytes": path.stat().st_size}
    return out


def measure_run(label: str, args: list[str], workdir: Path, *, env: dict, time_limit: float, memory_limit: float) -> dict:
    """A whole `causalged run` as one process (the targets of issue 11 for the evaluation)."""
    out = workdir / f"run_{label}"
    shutil.rmtree(out, ignore_errors=True)
    result = run_limited([sys.executable, "-m", "causalged.cli", "run", *args, "--outdir", str(out)], env=env, time_limit=time_limit,
                         memory_limit=memory_limit, log_path=workdir / f"run_{label}.log")
    trace = out / "pipeline_info" / "execution_trace.json"
    result["steps"] = {t["step"]: t["seconds"] for t in json.loads(trace.read_text())["trace"]} if trace.exists() else {}
    print(f"run {label}: {result['status']} {result['seconds']:.0f} s", flush=True)
    return result


# --------------------------------------------------------------------------- the page
def slope(rungs: list[Rung], results: dict, step: str) -> tuple[float, int]:
    """Log-log slope of wall time vs cells x spots over the finished rungs with >= 10^4 cells and 2,000 genes."""
    points = [(math.log10(r.n_cells * r.n_spots), math.log10(results[r.name][step]["seconds"])) for r in rungs
              if r.n_cells and r.n_cells >= 10_000 and r.n_genes == 2_000 and results[r.name][step]["status"] == "ok"]
    if len(points) < 2:
        return math.nan, len(points)
    x, y = np.array(points).T
    return float(np.polyfit(x, y, 1)[0]), len(points)


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def render(rungs: list[Rung], results: dict, runs: dict, *, time_limit: float, memory_limit: float, commit: str, started: str) -> str:
    lines = [
        "# Scale: the cost of every step from the demo to atlas size",
        "",
        f"Written by `nice -n 10 python benchmarks/scale.py` (commit `{commit}`, started {started}) on {platform.machine()} "
        f"with {os.cpu_count()} CPU cores, Python {platform.python_version()}, no GPU (the CPU route; GPU memory is therefore not "
        f"reported). Every step runs as its own process under a limit of **{time_limit:.0f} s wall time and "
        f"{memory_limit / 2**30:.0f} GB resident memory** (the atlas rung: its target's own {ATLAS_LIMITS[0] / 60:.0f} min and "
        f"{ATLAS_LIMITS[1]:.0f} GB per step, 1.5 x the time for simulating it); a step stopped by it says so, and the rest of its "
        "rung is not run. The machine may have been shared with other work (tests, other benchmarks, the ladder beside the "
        "atlas), so times are upper bounds.",
        "",
        "The data are `causalged simulate` pairs with the size options (sparse counts; the share of non-zero reference entries "
        "is in the size column: the default sparsity for r1-r4, `--base-mean -4.5` for the atlas, as in droplet atlases); "
        "the route is `causalged run --skip-evaluation` with the default method, step by step, plus one cross-validation fold "
        "of the default method (the evaluation costs `--n-folds` of them, which `--workers` / Nextflow run in parallel). "
        "A reference above 2^28 stored entries (the atlas) is streamed through qc, normalize and hvg in row blocks "
        "(`CAUSALGED_STREAM_ENTRIES`).",
        "",
        "## Wall time (s) and peak RSS (GB) per step",
        "",
        "| rung | cells x spots x genes (panel) | " + " | ".join(STEPS) + " |",
        "|---|---|" + "---|" * len(STEPS),
    ]
    for r in rungs:
        res = results[r.name]
        size = "demo: 1,500 x 600 x 200 (100)" if r.n_cells is None else \
            f"{r.n_cells:,} x {r.n_spots:,} x {r.n_genes:,} ({round(r.panel_fraction * r.n_genes):,})"
        reference = res.get("shape", {}).get("sc")
        if reference:
            size += f", {reference['nnz'] / np.prod(reference['shape']):.0%} non-zero"
        cells = []
        for step in STEPS:
            s = res[step]
            if s["status"] == "ok":
                cells.append(f"{_fmt(s['seconds'])} s, {_fmt(s['peak_rss'] / 2**30, 2)} GB")
            elif s["status"].startswith("stopped"):
                cells.append(f"**{s['status']}** (at {_fmt(s['seconds'], 0)} s, {_fmt(s['peak_rss'] / 2**30, 1)} GB)")
            else:
                cells.append(s["status"])
        lines.append(f"| {r.name} | {size} | " + " | ".join(cells) + " |")
    lines += ["", "## Growth: log-log slope of time against cells x spots", "",
              "Fitted per step over the finished rungs with at least 10^4 cells and the 2,000-gene reference (r1-r4, so that only "
              "cells x spots moves). Target of issue 11: slope <= 1.1 for every step. From r3 on the default's fit pools the "
              "reference into metacells (`CAUSALGED_MAX_FIT_CELLS`, default 50,000), which is what keeps impute and crossval flat "
              "in cells.", "",
              "| step | slope | rungs fitted | target (<= 1.1) |", "|---|---|---|---|"]
    slopes = {}
    for step in STEPS:
        b, n = slope(rungs, results, step)
        slopes[step] = b
        verdict = "not measured (fewer than 2 finished rungs)" if not np.isfinite(b) else ("met" if b <= 1.1 else f"missed by {b - 1.1:.2f}")
        lines.append(f"| {step} | {_fmt(b, 2)} | {n} | {verdict} |")
    lines += ["", "## Targets of issue 11", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += _target_rows(results, runs, slopes, time_limit=time_limit)
    return "\n".join(lines) + "\n"


def _atlas_note(atlas: dict, route: tuple[str, ...]) -> str:
    """Where the atlas rung's time and memory go, step by step (simulating it is not part of the route)."""
    parts = [f"{step} {atlas[step]['seconds'] / 60:.1f} min / {atlas[step]['peak_rss'] / 2**30:.1f} GB" for step in route
             if atlas[step]["status"] == "ok"]
    simulated = atlas["simulate"]
    note = (f"per step: {', '.join(parts)}; simulating the pair (not part of the route) took {simulated['seconds'] / 60:.0f} min "
            f"and {simulated['peak_rss'] / 2**30:.1f} GB. qc, normalize and hvg stream the gzip-compressed reference in row blocks "
            "on one core (each pass decompresses it; normalize writes it twice, log values and counts), which is where their time goes.")
    if atlas["impute"]["status"] == "ok":
        note += (" impute takes the fitting genes in blocks of cells and pools them into 50,000 metacells (`CAUSALGED_MAX_FIT_CELLS`), "
                 "chooses the default's parts by inner CV on at most 4,000 spots and 1,000 scored genes, pools the targets into the "
                 "same metacells as it reads them, then predicts a block of genes at a time (the fit's ridge view and its bootstrap "
                 "refits in one product with the ST panel), so its memory is the fit's, not the targets'.")
    else:
        note += f" impute: {atlas['impute']['status']} (see its log in the work folder)."
    fold = atlas.get("crossval (1 fold)", {"status": "not run"})
    if fold["status"] == "ok":
        note += (f" One cross-validation fold (the evaluation, outside this target) took {fold['seconds'] / 60:.1f} min and "
                 f"{fold['peak_rss'] / 2**30:.1f} GB: it reads the reference on disk in one pass, hands the fit the only copy of its "
                 "cells (freed once pooled), keeps the ST counts sparse, matches cells on each inner fold's columns without copying "
                 "them, and samples its intervals a block of held-out genes at a time.")
    else:
        note += (f" One cross-validation fold (the evaluation, outside this target) was {fold['status']}: it reads the reference on disk "
                 "in one pass, but where its memory goes beyond impute's is not yet measured.")
    return note


def _target_rows(results: dict, runs: dict, slopes: dict, *, time_limit: float) -> list[str]:
    rows = []
    route = ("qc", "normalize", "hvg", "train", "impute")
    atlas = results.get("atlas")
    if atlas:
        done = all(atlas[s]["status"] == "ok" for s in route)
        peak = max((atlas[s]["peak_rss"] for s in route if np.isfinite(atlas[s]["peak_rss"])), default=math.nan)
        stopped = next((f"{s}: {atlas[s]['status']}" for s in ("simulate", *route) if atlas[s]["status"] != "ok"), "")
        total = sum(atlas[s]["seconds"] for s in route) / 60 if done else math.nan
        misses = []
        if total >= 60:
            misses.append(f"time by {total - 60:.0f} min")
        if peak >= 16 * 2**30:
            misses.append(f"memory by {peak / 2**30 - 16:.1f} GB")
        verdict = (f"{'met' if not misses else 'missed: ' + ', '.join(misses)}; {_atlas_note(atlas, route)}" if done else
                   f"missed: not reached on this machine ({stopped}); {_atlas_note(atlas, route)}")
        rows.append(f"| 10^6 cells x 10^5 spots x 5,000-gene panel, default route without evaluation: < 16 GB and < 60 min | "
                    f"{'%.0f min, %.1f GB peak' % (total, peak / 2**30) if done else stopped} | {verdict} |")
    finite = [b for b in slopes.values() if np.isfinite(b)]
    worst = max(finite) if finite else math.nan
    rows.append(f"| every step's slope <= 1.1 from 10^4 cells upward | worst {_fmt(worst, 2)} "
                f"({', '.join(f'{k} {_fmt(v, 2)}' for k, v in slopes.items() if np.isfinite(v))}) | "
                f"{'not measured' if not finite else ('met' if worst <= 1.1 else f'missed by {worst - 1.1:.2f}')} |")
    r2 = results.get("r2")
    if r2:
        done = all(r2[s]["status"] == "ok" for s in route)
        total = sum(r2[s]["seconds"] for s in route)
        stopped = next((f"{s}: {r2[s]['status']}" for s in route if r2[s]["status"] != "ok"), "")
        rows.append(f"| 30,000 cells x 14,400 spots x 2,000 genes (panel 300), end to end without evaluation: < 5 min | "
                    f"{'%.1f min' % (total / 60) if done else stopped} | "
                    f"{('met' if total < 300 else f'missed by {(total - 300) / 60:.1f} min') if done else f'missed: more than {time_limit:.0f} s in one step'} |")
    for label, target, goal in (("test", "test data, `causalged run` with the default evaluation: < 2 min", 120),
                                ("osmfish", "osmFISH pair, `causalged run` with the default evaluation: < 15 min", 900)):
        if label in runs:
            run = runs[label]
            late = f"missed by {(run['seconds'] - goal) / 60:.1f} min"
            verdict = ("met" if run["seconds"] < goal else late) if run["status"] == "ok" else f"missed: {run['status']}"
            rows.append(f"| {target} | {_fmt(run['seconds'] / 60, 1)} min ({run['status']}) | {verdict} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks-scale.md")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--rungs", default=",".join(RUNGS))
    parser.add_argument("--time-limit", type=float, default=300.0, help="Seconds per step (and 3x that per whole run).")
    parser.add_argument("--memory-limit-gb", type=float, default=10.0)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--skip-runs", action="store_true", help="Only the ladder, not the two whole runs.")
    parser.add_argument("--render-only", type=Path, default=None, metavar="RESULTS_JSON",
                        help="Rewrite the page from an earlier run's results.json (its work folder) without measuring.")
    parser.add_argument("--reuse", action="store_true", help="Keep each rung's folder and the steps already measured in it.")
    parser.add_argument("--until", default=None, choices=STEPS, help="Stop each rung after this step (then --reuse to go on).")
    parser.add_argument("--keep-data", action="store_true", help="Keep the simulated pairs (needed to go on with --reuse).")
    parser.add_argument("--osmfish", type=Path, default=OSMFISH, help="The osmFISH pair's folder (pass it when running a code snapshot elsewhere).")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="causalged-scale-"))
    env = {**os.environ, "CAUSALGED_CPUS": str(args.cpus), "OMP_NUM_THREADS": str(args.cpus), "MPLBACKEND": "Agg"}
    memory_limit = args.memory_limit_gb * 2**30
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip() or "unknown"
    commit = os.environ.get("CAUSALGED_SCALE_COMMIT", commit)
    started = time.strftime("%Y-%m-%d %H:%M")
    rungs = [RUNGS[name] for name in args.rungs.split(",")]
    if args.render_only:
        kept = json.loads(args.render_only.read_text())
        started = kept.get("started", started)
        commit = kept.get("commit", commit)
        args.output.write_text(render(rungs, kept["results"], kept["runs"], time_limit=args.time_limit, memory_limit=memory_limit,
                                      commit=commit, started=started))
        print(f"wrote {args.output} from {args.render_only}")
        return
    results = {r.name: measure_rung(r, workdir, env=env, time_limit=args.time_limit, memory_limit=memory_limit, reuse=args.reuse,
                                    until=args.until, keep_data=args.keep_data) for r in rungs}
    runs = {}
    if not args.skip_runs:
        sheet = ROOT / "tests" / "data" / "samplesheet_test.csv"
        runs["test"] = measure_run("test", ["--input", str(sheet), "--n-folds", "5"], workdir, env=env,
                                   time_limit=3 * args.time_limit, memory_limit=memory_limit)
        if (args.osmfish / "sc.h5ad").exists():
            osm = workdir / "osmfish.csv"
            osm.write_text(f"sample,sc,st\nosmfish,{args.osmfish / 'sc.h5ad'},{args.osmfish / 'st.h5ad'}\n")
            runs["osmfish"] = measure_run("osmfish", ["--input", str(osm), "--workers", "2"], workdir, env=env,
                                          time_limit=900, memory_limit=memory_limit)
    (workdir / "results.json").write_text(json.dumps({"results": results, "runs": runs, "commit": commit, "started": started}, indent=1, default=float))
    args.output.write_text(render(rungs, results, runs, time_limit=args.time_limit, memory_limit=memory_limit, commit=commit, started=started))
    print(f"wrote {args.output} (work folder {workdir})")


if __name__ == "__main__":
    main()
