"""Every parameter of every step, defined once: name, type, default, help, steps, flag, Nextflow name.

Both routes and the schema come from this table. The ``causalged`` commands build their Click
options from it (:func:`click_params`); ``causalged run`` hands each step the keyword values
:func:`step_values` derives from the run's parameters; the Nextflow route's per-step arguments
(``conf/ext_args.config``) and the parameter entries of ``nextflow_schema.json`` are written
from it by ``python -m causalged.params --write``, and a test fails on any difference.

Naming rule: a step function's keyword is the flag without dashes (``--n-folds`` -> ``n_folds``);
the Nextflow parameter is that keyword, prefixed by the optional step's name where two steps
use the keyword for different things (``causality_max_genes``, ``ablation_n_folds``). Deprecated
flags stay as aliases for one release (CHANGELOG.md).

This module imports nothing heavy, so the command line starts fast.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

#: Pipeline steps in run order (the ``causalged <step>`` commands and ``causalged/steps/<step>.py``).
STEPS = ("import", "qc", "normalize", "hvg", "train", "impute", "crossval", "evaluate", "causality", "ablate", "report")
#: Commands beside the steps: demo data, samplesheet check, the whole route, the research harness.
COMMANDS = ("simulate", "validate_samplesheet", *STEPS, "run", "benchmark")
#: The Nextflow process that runs each step.
PROCESSES = {
    "import": "CAUSALGED_IMPORT", "qc": "CAUSALGED_QC", "normalize": "CAUSALGED_NORMALIZE", "hvg": "CAUSALGED_SELECT_HVG", "train": "CAUSALGED_TRAIN",
    "impute": "CAUSALGED_IMPUTE", "crossval": "CAUSALGED_CROSSVALIDATE", "evaluate": "CAUSALGED_EVALUATE",
    "causality": "CAUSALGED_CAUSALITY", "ablate": "CAUSALGED_ABLATE",
}
#: Nextflow parameters that belong to the Nextflow route alone (engine, containers, scheduler,
#: report rendering, nf-core boilerplate): nextflow.config and the schema hold them, no step takes them.
NEXTFLOW_ONLY = (
    "input_basedir", "allow_failed_folds", "skip_multiqc", "multiqc_config", "multiqc_title",
    "image_cachedir", "gpu_methods", "slurm_partition", "slurm_gpu_partition", "slurm_account", "slurm_options", "slurm_gpu_options",
    "custom_config_version", "custom_config_base", "config_profile_name", "config_profile_description", "config_profile_contact",
    "config_profile_url", "publish_dir_mode", "validate_params", "monochrome_logs", "help", "version", "help_full", "show_hidden",
    "trace_report_suffix",
)

INPUT, OPTION, ARGUMENT = "input", "option", "argument"
#: A sample id names files: no path separators, no leading dot (the samplesheet schema uses the same pattern).
SAMPLE_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Param:
    """One parameter. ``name`` is unique; ``nf`` says whether it is a Nextflow (and ``causalged run``) parameter."""

    name: str
    type: Any  # int, float, str, bool, Path, or a tuple of choices
    default: Any
    help: str
    steps: tuple[str, ...]
    nf: bool = True
    key: str | None = None  # keyword of the step functions (default: name)
    kind: str = OPTION  # input: a file the step reads (never in ext.args); argument: positional
    required: bool = False
    min: float | None = None
    max: float | None = None
    aliases: tuple[str, ...] = ()  # deprecated flags, accepted for one release
    multiple: bool = False
    group: str = "method_options"  # nextflow_schema.json section
    step_help: dict = field(default_factory=dict)  # a step's own wording (inputs differ per step)
    env: str | None = None  # also passed to every step as this environment variable
    show_default: bool = True
    required_steps: tuple[str, ...] = ()  # steps where it is required although ``required`` is False
    step_default: dict = field(default_factory=dict)  # a step's own default
    pattern: str | None = None  # a regular expression the whole value must match (with the reason shown when it does not)

    @property
    def keyword(self) -> str:
        return self.key or self.name

    @property
    def flag(self) -> str:
        return "--" + self.keyword.replace("_", "-")

    def flag_for(self, step: str) -> str:
        """``causalged run`` spells every option by its Nextflow name (``--ablation-n-folds``); a step by its keyword."""
        return "--" + self.name.replace("_", "-") if step == "run" else self.flag

    def help_for(self, step: str) -> str:
        return self.step_help.get(step, self.help)

    def default_for(self, step: str) -> Any:
        return self.step_default.get(step, self.default)

    def required_for(self, step: str) -> bool:
        return self.required or step in self.required_steps


def _p(name, type_, default, help_, steps, **kw) -> Param:
    return Param(name, type_, default, help_, tuple(steps), **kw)


MODEL_STEPS = ("train", "crossval", "evaluate", "ablate")
SAMPLING_STEPS = ("impute", "crossval", "evaluate")
HVG_INPUT = "the <sample>.{role}.hvg.h5ad written by the hvg step"

PARAMS: tuple[Param, ...] = (
    # ------------------------------------------------------------------ inputs and outputs (files)
    _p("sample", str, None, "Sample id; prefixes every output file: letters, digits, '_', '.', '-', starting with a letter or digit.",
       ("import", "qc", "normalize", "hvg", "train", "impute", "crossval", "evaluate", "causality"), nf=False, kind=INPUT, required=True,
       pattern=SAMPLE_ID),
    _p("sc", Path, None, "scRNA-seq reference (.h5ad).", ("import", "qc", "normalize", "hvg", "train", "impute", "crossval", "evaluate", "causality"),
       nf=False, kind=INPUT, required_steps=("import", "qc", "normalize", "hvg", "train", "impute", "crossval", "evaluate"), step_help={
           "import": "scRNA-seq reference: .h5ad (raw counts in X, layers['counts'] or .raw.X; CELLxGENE files too), Cell Ranger .h5 or "
                     "matrix folder, or .loom.",
           "qc": "The reference as the import step wrote it (<sample>.sc.h5ad), or any .h5ad of raw counts.", "normalize": "QC'd scRNA-seq (<sample>.sc.qc.h5ad).",
           "hvg": "Normalized scRNA-seq (<sample>.sc.norm.h5ad).",
           "causality": "Normalized scRNA-seq reference (.h5ad); needed by linear_ridge and knn_cells.",
           **{s: "Reference after hvg (<sample>.sc.hvg.h5ad)." for s in ("train", "impute", "crossval", "evaluate")}}),
    _p("st", Path, None, "Spatial data (.h5ad).", ("import", "qc", "normalize", "hvg", "train", "impute", "crossval", "evaluate", "causality"),
       nf=False, kind=INPUT, required=True, step_help={
           "import": "Spatial data: .h5ad (raw counts, coordinates in obsm['spatial'] or obs x/y), a SpatialData .zarr, or an instrument "
                     "folder (Visium or Visium HD outs/, Xenium bundle, MERSCOPE region, CosMx flat files), recognised from its files.",
           "qc": "The spatial data as the import step wrote it (<sample>.st.h5ad), or any .h5ad of raw counts with coordinates.",
           "normalize": "QC'd spatial data (<sample>.st.qc.h5ad).", "hvg": "Normalized spatial data (<sample>.st.norm.h5ad).",
           "causality": "Normalized spatial data with coordinates (.h5ad).",
           **{s: "Spatial data after hvg (<sample>.st.hvg.h5ad)." for s in ("train", "impute", "crossval", "evaluate")}}),
    _p("split", Path, None, "Gene split with folds (<sample>.split.json).", ("train", "crossval", "evaluate"), nf=False, kind=INPUT,
       required=True, step_help={"train": "Gene split (<sample>.split.json): trains on 'train', early-stops on 'val'."}),
    _p("model", Path, None, "Model folder from `causalged train` (<sample>.model).", ("impute",), nf=False, kind=INPUT, required=True),
    _p("genes", Path, None, "Text file of genes to impute (one per line), kept whatever their variability.", ("hvg",), nf=False, kind=INPUT),
    _p("trust", Path, None, "<sample>.gene_trust.csv from `causalged evaluate`: fills var['expected_pcc'] of each imputed gene.",
       ("impute",), nf=False, kind=INPUT),
    _p("predictions", Path, (), "Fold files from `crossval` (<sample>.fold<K>.predictions.h5ad); if none, every fold is run here.",
       ("evaluate",), nf=False, kind=ARGUMENT, multiple=True),
    _p("outdir", Path, Path("."), "Folder for the outputs (created if missing).",
       ("simulate", "import", "qc", "normalize", "hvg", "train", "impute", "crossval", "evaluate", "causality", "report", "run"), nf=False,
       step_help={"report": "Pipeline output folder to collect from (the report goes to <outdir>/multiqc/).",
                  "run": "Output folder (same layout as the Nextflow pipeline)."}, required_steps=("run", "report")),
    _p("fold", int, None, "Fold to run (0-based, as in the split).", ("crossval",), nf=False, required=True, min=0),
    # ------------------------------------------------------------------ QC, normalization, gene selection
    _p("min_genes_cell", int, 500, "QC: drop cells with fewer detected genes (scaled down for small references, see --scale-min-genes).",
       ("qc",), min=0, group="gene_selection_options"),
    _p("min_genes_spot", int, 1, "QC: drop spots with fewer detected genes.", ("qc",), min=0, group="gene_selection_options"),
    _p("min_cells_gene", int, 1, "QC: drop genes detected in fewer observations.", ("qc",), min=0, group="gene_selection_options"),
    _p("scale_min_genes", bool, True, "QC: scale --min-genes-cell to the reference's gene count (500 assumes a whole transcriptome).",
       ("qc",), group="gene_selection_options"),
    _p("case_insensitive", bool, False, "Match gene names ignoring capitalisation (Gad1 vs GAD1).", ("qc",), group="gene_selection_options"),
    _p("already_normalized", bool, False, "Inputs are log-normalized already: use them as they are.", ("import", "normalize"),
       group="gene_selection_options"),
    _p("platform", str, None, "The samplesheet's platform (Xenium, Visium, VisiumHD, MERSCOPE, CosMx, SpatialData): only confirms the "
       "layout recognised from the files; a mismatch is an error. Other values (MERFISH, osmFISH, ...) are kept as a label.", ("import",),
       nf=False),
    _p("bin_size", int, 8, "Visium HD: the bin size (micrometres) whose counts are read: 2, 8 or 16.", ("import",), min=2,
       group="input_output_options"),
    _p("gene_symbols", str, None, "The reference's var column of gene symbols, when its var_names are ids (Ensembl); default: found "
       "among feature_name, gene_symbols, gene_symbol, gene_name, ... when it matches more panel genes.", ("import",),
       group="input_output_options"),
    _p("top_fraction", float, 0.25, "Fraction of reference genes kept as highly variable.", ("hvg",), min=0.0, max=1.0,
       group="gene_selection_options"),
    _p("n_folds", int, 10, "Cross-validation folds over the shared genes (capped at their number).", ("hvg",), min=2,
       group="evaluation_options"),
    _p("seed", int, 0, "Seed of every random choice: gene split and folds, initialisation, batches, sampling noise, metacells.",
       ("simulate", "hvg", "train", "impute", "crossval", "evaluate", "causality"), min=0, max=MAX_SEED),
    # ------------------------------------------------------------------ method and model
    _p("method", "methods", "knn_ridge_blend",
       "Imputation method of the production branch (knn_ridge_blend = the default blend; causalged = the paper-faithful model).",
       ("train",)),
    _p("preset", ("cpu", "paper"), "cpu", "Diffusion model size: cpu (small, fast) or paper (the paper's architecture).", MODEL_STEPS),
    _p("device", ("auto", "cpu", "cuda"), "auto", "auto: CUDA when PyTorch sees a GPU; cuda without one is an error.",
       ("train", "impute", "crossval", "evaluate", "ablate")),
    _p("epochs", int, None, "Override the diffusion models' maximum epochs (default: the preset's budget with early stopping).",
       MODEL_STEPS, min=1, aliases=("--model-epochs",)),
    _p("n_samples", int, 8, "Samples per gene: their spread is layers['std'] and the interval that cross-validation checks "
       "(impute: at least 1; 0 in cross-validation: no interval).", ("impute", "crossval", "evaluate", "ablate"), min=0),
    _p("sampler", ("ddim", "ddpm"), "ddim", "Diffusion models: ddim (deterministic, --sampling-steps steps) or ddpm (ancestral).",
       SAMPLING_STEPS),
    _p("sampling_steps", int, 50, "Diffusion sampling steps (ddpm with 0: all T).", SAMPLING_STEPS, min=0, aliases=("--steps",)),
    _p("inference_mode", ("one_group", "autoregressive"), None,
       "Diffusion models: all latent tokens at once, or group by group as the paper describes (default: the method's own, "
       "autoregressive for causalged_ar, else one_group; causalged_nomask is always sampled in one group).",
       SAMPLING_STEPS, aliases=("--mode",)),
    _p("chunk_genes", int, 0, "Genes predicted and written at a time (0: as many as fit in 256 MB), so memory does not grow with the targets.",
       ("impute",), min=0),
    _p("max_fit_cells", int, 50000, "Reference cells above which the classical methods (the default among them) pool the reference into this many "
       "metacells before fitting, so memory stops growing with the atlas.", ("run",), min=1,
       env="CAUSALGED_MAX_FIT_CELLS"),
    _p("stream_entries", int, 268435456, "Stored reference entries (non-zeros) above which qc, normalize and hvg read the reference in row blocks instead "
       "of whole (2^28, about 2 GB of CSR).",
       ("run",), min=1, env="CAUSALGED_STREAM_ENTRIES"),
    _p("resume", bool, False, "Continue from <sample>.model/checkpoints/last.pt (after a kill); ends where an uninterrupted run would.",
       ("train",), nf=False),
    _p("checkpoint_every", int, None, "Epochs between checkpoints (default: the preset's).", ("train",), nf=False, min=1),
    # ------------------------------------------------------------------ evaluation
    _p("eval_methods", str, "knn_ridge_blend,knn,kernel_ridge,spot_depth,mean_map",
       "Comma-separated methods compared by cross-validation, or a set: fast (the default), full (adds tangram and causalged), all.",
       ("run",), group="evaluation_options"),
    _p("skip_evaluation", bool, False, "Only impute; skip the held-out-gene cross-validation.", ("run",), group="evaluation_options"),
    _p("run_causality", bool, False, "Also run the causal analysis of the normalized panel (docs/causality.md).", ("run",),
       group="causality_options"),
    _p("run_ablation", bool, False, "Also run the paper's ablation grid of the causalged model on each sample's raw pair (docs/ablations.md).",
       ("run",), group="ablation_options"),
    _p("methods", str, None, "Comma-separated methods, or a set name (fast, full, all); default: every method.",
       ("crossval", "evaluate"), nf=False),
    _p("metric_set", ("canonical", "paper"), "canonical",
       "canonical: SpatialBenchmarking definitions; paper: the public CausalGeD code's variants (labelled in outputs).",
       ("evaluate",), nf=False, aliases=("--metrics",)),
    _p("protocol", ("heldout", "paper-inpainting"), "heldout",
       "paper-inpainting ADDS the public code's masked-inpainting scores (most true values written back) with their noise control, "
       "labelled; held-out scores are always written.", ("evaluate",), nf=False),
    _p("no_figures", bool, False, "Skip the PNG figures.", ("evaluate",), nf=False),
    # ------------------------------------------------------------------ causal analysis (optional step)
    _p("causality_methods", str, "granger,linear_ridge,knn_cells",
       "Comma-separated: granger (spatial F-test), linear_ridge, knn_cells (causal linearization of a model).", ("causality",),
       key="methods", group="causality_options"),
    _p("causality_max_genes", int, 100, "Keep the most variable panel genes; the pair count is quadratic, G (G - 1).", ("causality",),
       key="max_genes", min=2, group="causality_options"),
    _p("causality_n_neighbors", int, 8, "The spatial lag: mean over this many nearest other spots.", ("causality",), key="n_neighbors",
       min=1, group="causality_options"),
    _p("radius", float, None, "Instead of --n-neighbors: mean over every other spot within this distance.", ("causality",), nf=False, min=0.0),
    _p("covariates", str, None, "obsm key or comma-separated obs columns added to both Granger models (e.g. cell_type_fractions).",
       ("causality",), nf=False),
    _p("threshold", float, 0.1, "Linearization: |W| (per unit of the target's own decay) called an edge.", ("causality",), nf=False, min=0.0),
    _p("n_top", int, 20, "Pairs in the MultiQC table and edges in the network plot.", ("causality",), nf=False, min=1),
    # ------------------------------------------------------------------ ablation (optional step) and the research harness
    _p("datasets", str, (), "Dataset folders (raw-count sc.h5ad + st.h5ad) or `demo`.", ("ablate", "benchmark"), nf=False, kind=ARGUMENT,
       multiple=True, required=True),
    _p("output", Path, None, "The markdown page to write.", ("ablate", "benchmark", "validate_samplesheet"), nf=False,
       step_help={"validate_samplesheet": "Write the validated sheet (absolute paths) here."},
       step_default={"ablate": Path("docs/ablations.md"), "benchmark": Path("docs/benchmarks.md")}),
    _p("ablation_seeds", str, "0,1", "Comma-separated seeds (gene folds and model randomness).", ("ablate",), key="seeds",
       group="ablation_options"),
    _p("ablation_n_folds", int, 3, "Gene folds of the ablation grid.", ("ablate",), key="n_folds", min=2, group="ablation_options"),
    _p("ablation_axes", str, None, "Comma-separated axes (default: all: decoder,encoder,ar_decay,depth,sampler,mask,inference).",
       ("ablate",), key="axes", group="ablation_options"),
    _p("jobs", int, 1, "Datasets run at once, one process (and one CPU thread) each.", ("ablate", "benchmark"), nf=False, min=1),
    _p("time_limit", float, None, "Minutes after which no new fold starts; the page says how far it got, and the same command continues "
       "(finished folds are kept). 0: only write the page from the kept folds.", ("ablate",), nf=False, min=0.0),
    _p("mqc_dir", Path, None, "Also write the verdicts and figures there as MultiQC content (then: causalged report --outdir DIR).",
       ("ablate",), nf=False),
    _p("design_split", bool, False, "Report the datasets the default was designed on (osmFISH, MERFISH) apart from every other dataset "
       "given (unseen by its design), with the default's margin and per-fold choices on each.", ("benchmark",), nf=False),
    _p("benchmark_methods", str, None, "Comma-separated methods or a set name (default: every method).", ("benchmark",), nf=False,
       key="methods"),
    _p("benchmark_seeds", str, "0,1,2", "Comma-separated seeds (gene folds and method randomness).", ("benchmark",), nf=False, key="seeds"),
    _p("benchmark_n_folds", int, 10, "Gene folds per seed.", ("benchmark",), nf=False, key="n_folds", min=2),
    _p("benchmark_n_samples", int, 40, "Bootstrap/diffusion samples for the calibration check (first seed).", ("benchmark",), nf=False,
       key="n_samples", min=0),
    _p("benchmark_preset", ("cpu", "paper"), "cpu", "Diffusion model size.", ("benchmark",), nf=False, key="preset"),
    _p("benchmark_device", ("auto", "cpu", "cuda"), "auto", "auto: CUDA when PyTorch sees a GPU.", ("benchmark",), nf=False, key="device"),
    _p("benchmark_epochs", int, None, "Cap the diffusion models' epochs (a speed option for quick looks; default: the preset's budget "
       "with early stopping).", ("benchmark",), nf=False, key="epochs", min=1, aliases=("--model-epochs",)),
    _p("slow_seeds", int, 1, "Run tangram and causalged_plus on only this many of the seeds (CPU time).", ("benchmark",), nf=False, min=1),
    _p("model_seeds", int, None, "Run the diffusion models (causalged*) on only this many of the seeds (default: all).", ("benchmark",),
       nf=False, min=1),
    # ------------------------------------------------------------------ report
    _p("title", str, "CausalGeD", "Report title.", ("report",), nf=False),
    _p("config", Path, None, "MultiQC config (default: assets/multiqc_config.yml).", ("report",), nf=False),
    # ------------------------------------------------------------------ demo data and samplesheet
    _p("name", str, "demo", "File prefix and sample id of the generated data.", ("simulate",), nf=False),
    _p("size", ("tiny", "demo"), "demo", "tiny: unit-test size (<1 MB); demo: the README demo.", ("simulate",), nf=False),
    _p("grn", ("cell", "spatial"), "cell", "Where the network acts: within cells, or through neighbouring spots (a spatial trace, for "
       "`causalged causality`).", ("simulate",), nf=False),
    _p("n_cells", int, None, "Reference cells instead of the --size preset's (any size option: the chunked sparse generator).",
       ("simulate",), nf=False, min=1),
    _p("n_spots", int, None, "ST spots, on a near-square lattice (rounded up to fill its last row).", ("simulate",), nf=False, min=1),
    _p("n_genes", int, None, "Reference genes (the ST panel measures --panel-fraction of them).", ("simulate",), nf=False, min=2),
    _p("panel_fraction", float, None, "Share of the reference genes in the ST panel, in (0, 1).", ("simulate",), nf=False),
    _p("base_mean", float, None, "Genes' mean baseline log-rate for the chunked generator (default -3.0, about 21 % of reference entries "
       "non-zero; -4.5 gives droplet-atlas sparsity, about 8 %).", ("simulate",), nf=False),
    _p("input", Path, None, "Samplesheet CSV (columns sample,sc,st[,genes,platform]).", ("validate_samplesheet", "run"), nf=True,
       group="input_output_options", step_help={"validate_samplesheet": "Samplesheet CSV."}, required_steps=("validate_samplesheet",)),
    # ------------------------------------------------------------------ the single-machine route
    _p("demo", bool, False, "Simulate the demo data into <outdir>/demo_data and run on it.", ("run",), nf=False),
    _p("workers", int, 1, "Cross-validation folds run at once, each in its own process with its share of the CPUs (--cpus) as threads.",
       ("run",), nf=False, min=1),
)

BY_NAME = {p.name: p for p in PARAMS}


def step_params(step: str) -> list[Param]:
    """The parameters a step (or command) takes, in table order."""
    return [p for p in PARAMS if step in p.steps]


def defaults(step: str | None = None) -> dict[str, Any]:
    """Default values by name: of one step's parameters, or of every pipeline (``nf``) parameter."""
    chosen = step_params(step) if step else [p for p in PARAMS if p.nf]
    return {p.name: p.default for p in chosen}


def run_params() -> list[Param]:
    """The parameters of ``causalged run``: every pipeline parameter any step takes, and the route's own."""
    return [p for p in PARAMS if (p.nf and p.kind == OPTION) or "run" in p.steps]


# --------------------------------------------------------------------------- values derived for a step
def crossval_methods(values: dict[str, Any]) -> str:
    """The production method is always cross-validated, so its imputed genes get an expected accuracy."""
    return ",".join(dict.fromkeys([values["method"], *[m.strip() for m in values["eval_methods"].split(",") if m.strip()]]))


#: Step keywords that are computed from pipeline parameters rather than taken as they are:
#: (python function of the run's values, the same expression in Groovy over ``params``).
DERIVED: dict[tuple[str, str], tuple[Callable[[dict], Any], str]] = {
    ("crossval", "methods"): (crossval_methods, "([params.method] + params.eval_methods.tokenize(',')*.trim()).unique().join(',')"),
}


def step_values(step: str, values: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments (inputs excluded) that both routes give ``step`` for the run's parameter ``values``."""
    out = {}
    for p in step_params(step):
        if p.kind != OPTION:
            continue
        if (step, p.keyword) in DERIVED:
            out[p.keyword] = DERIVED[(step, p.keyword)][0](values)
        elif p.nf:
            out[p.keyword] = values.get(p.name, p.default)
    return out


def to_argv(step: str, kwargs: dict[str, Any]) -> list[str]:
    """The command-line flags for a step's keyword values, by the rule both routes follow:
    a valued option always (None: left out), a boolean only when it differs from its default."""
    argv = []
    by_key = {p.keyword: p for p in step_params(step) if p.kind == OPTION}
    for key, value in kwargs.items():
        p = by_key[key]
        if p.type is bool:
            if bool(value) != bool(p.default):
                argv.append(p.flag if value else p.flag.replace("--", "--no-", 1))
        elif value is not None:
            argv += [p.flag, str(value)]
    return argv


def command_line(step: str, kwargs: dict[str, Any]) -> list[str]:
    """``causalged <step> ...`` as argv for the keyword values, inputs included (for logs and records)."""
    by_key = {p.keyword: p for p in step_params(step)}
    options = {k: v for k, v in kwargs.items() if k in by_key and by_key[k].kind == OPTION}
    argv = [step.replace("_", "-")]
    for key, value in kwargs.items():
        p = by_key.get(key)
        if p is not None and p.kind == INPUT and value is not None:
            argv += [p.flag, str(value)]
    argv += to_argv(step, options)
    for key, value in kwargs.items():
        p = by_key.get(key)
        if p is not None and p.kind == ARGUMENT:
            argv += [str(v) for v in (value if p.multiple else [value])]
    return argv


# --------------------------------------------------------------------------- validation
def check_value(p: Param, value: Any) -> Any:
    """One value against its parameter's type and bounds; an :class:`InputError` naming the flag."""
    from causalged.errors import InputError

    if value is None or p.multiple:
        return value
    if p.pattern and not re.fullmatch(p.pattern, str(value)):
        raise InputError(None, f"{p.flag} {value!r} is not allowed: {p.help.split(': ', 1)[-1].rstrip('.')}",
                         f"pass {p.flag} as letters, digits, '_', '.' or '-' (no '/', no leading '.')")
    if p.type is bool:
        if not isinstance(value, bool):
            raise InputError(None, f"{p.flag} must be true or false, got {value!r}", f"pass {p.flag} or leave it out")
        return value
    if p.type in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (p.type is int and not float(value).is_integer()):
            raise InputError(None, f"{p.flag} must be {'an integer' if p.type is int else 'a number'}, got {value!r}", f"pass a number to {p.flag}")
        value = p.type(value)
        if (p.min is not None and value < p.min) or (p.max is not None and value > p.max):
            bounds = f"at least {p.min:g}" if p.max is None else (f"at most {p.max:g}" if p.min is None else f"between {p.min:g} and {p.max:g}")
            raise InputError(None, f"{p.flag} must be {bounds}, got {value}", f"pass {p.flag} {bounds}")
        return value
    choices = _choices(p)
    if choices and value not in choices:
        raise InputError(None, f"{p.flag} must be one of {', '.join(choices)}, got {value!r}", f"pass one of {', '.join(choices)}")
    return value


def check_values(step: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Every keyword value of a step, checked; unknown keywords are an error naming them."""
    by_key = {p.keyword: p for p in step_params(step)}
    unknown = sorted(set(kwargs) - set(by_key))
    if unknown:
        raise TypeError(f"{step}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(by_key)}")
    return {k: check_value(by_key[k], v) for k, v in kwargs.items()}


def _choices(p: Param) -> tuple[str, ...] | None:
    if isinstance(p.type, tuple):
        return p.type
    if p.type == "methods":
        from causalged.methods import METHODS

        return METHODS
    return None


# --------------------------------------------------------------------------- Click
def click_params(step: str) -> list:
    """The Click options and arguments of ``causalged <step>`` (``causalged run`` for ``run``)."""
    import click

    chosen = run_params() if step == "run" else step_params(step)
    out = []
    for p in chosen:
        flag = p.flag_for(step)
        decls = [flag, *p.aliases, p.name]
        kwargs: dict[str, Any] = {"help": p.help_for(step) + (f" (Old spelling, deprecated: {', '.join(p.aliases)}.)" if p.aliases else "")}
        ptype = _click_type(p)
        if p.kind == ARGUMENT:
            out.append(click.Argument([p.name], nargs=-1 if p.multiple else 1, type=ptype, required=p.required_for(step)))
            continue
        if p.type is bool:
            decls = [f"{flag}/{flag.replace('--', '--no-', 1)}" if p.default else flag, *p.aliases, p.name]
            kwargs.update(is_flag=True, default=p.default, show_default=p.default)
        else:
            default = p.default_for(step)
            if p.env:
                kwargs["envvar"] = p.env
            kwargs.update(type=ptype, default=None if p.required_for(step) else default, required=p.required_for(step),
                          show_default=p.show_default and default is not None and not p.required_for(step), multiple=p.multiple)
        out.append(click.Option(decls, **kwargs))
    return out


def _click_type(p: Param):
    import click

    if p.pattern:
        return _Pattern(p)
    if isinstance(p.type, tuple):
        return click.Choice(p.type)
    if p.type == "methods":
        return click.Choice(list(_choices(p)))
    if p.type is Path:
        return click.Path(path_type=Path)
    if p.type in (int, float) and (p.min is not None or p.max is not None):
        rng = click.IntRange if p.type is int else click.FloatRange
        return rng(min=p.min, max=p.max)
    return p.type


def _Pattern(p: Param):
    """A Click type that refuses a value not matching ``p.pattern`` (a sample id naming files outside --outdir)."""
    import click

    class Pattern(click.ParamType):
        name = "TEXT"

        def convert(self, value, param, ctx):
            if not re.fullmatch(p.pattern, str(value)):
                self.fail(f"{value!r} is not allowed: use letters, digits, '_', '.' or '-', starting with a letter or digit "
                          f"(it names the output files, which must stay inside --outdir)", param, ctx)
            return value

    return Pattern()


# --------------------------------------------------------------------------- Nextflow: ext.args and schema
GENERATED_NOTE = "Generated by `python -m causalged.params --write` from causalged/params.py: do not edit by hand."


def groovy_arg(step: str, p: Param) -> str:
    """The Groovy list element that renders one option of a step from ``params`` (empty string: left out)."""
    if (step, p.keyword) in DERIVED:
        return f'"{p.flag} ${{{DERIVED[(step, p.keyword)][1]}}}"'
    ref = f"params.{p.name}"
    if p.type is bool:
        return f"{ref} ? '{p.flag}' : ''" if not p.default else f"{ref} ? '' : '{p.flag.replace('--', '--no-', 1)}'"
    if p.default is None:
        return f"{ref} != null ? \"{p.flag} ${{{ref}}}\" : ''"
    return f'"{p.flag} ${{{ref}}}"'


def ext_args_config() -> str:
    """conf/ext_args.config: each step's ``ext.args`` closure, rendered from this table."""
    lines = ["/*", f" * {GENERATED_NOTE}", " * Each step's command-line arguments from the pipeline parameters; the same values `causalged run`",
             " * gives the step functions (causalged.params.step_values). Closures: read when a task starts, after every profile.", " */",
             "process {"]
    for step, process in PROCESSES.items():
        args = [p for p in step_params(step) if p.kind == OPTION and (p.nf or (step, p.keyword) in DERIVED)]
        if not args:
            continue
        lines += [f"    withName: '{process}' {{", "        ext.args = {", "            ["]
        lines += [f"                {groovy_arg(step, p)}," for p in args]
        lines += ["            ].findAll { arg -> arg }.join(' ')", "        }", "    }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def schema_property(p: Param) -> dict[str, Any]:
    """A parameter's entry in nextflow_schema.json (type, default, description, bounds, choices)."""
    types = {int: "integer", float: "number", bool: "boolean", str: "string", Path: "string"}
    entry: dict[str, Any] = {"type": types.get(p.type, "string")}
    if p.default is not None and p.default != ():
        entry["default"] = str(p.default) if isinstance(p.default, Path) else p.default
    entry["description"] = p.help
    choices = _choices(p)
    if choices:
        entry["enum"] = list(choices)
    if p.min is not None:
        entry["minimum"] = p.min
    if p.max is not None:
        entry["maximum"] = p.max
    return entry


SCHEMA_KEYS = ("type", "default", "description", "enum", "minimum", "maximum")


def pipeline_params() -> list[Param]:
    """The parameters that are Nextflow parameters too (``params.<name>``)."""
    return [p for p in PARAMS if p.nf]


def update_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """nextflow_schema.json with every pipeline parameter's entry written from this table (other keys kept)."""
    defs = schema["$defs"]
    for p in pipeline_params():
        group = defs.setdefault(p.group, {"title": p.group.replace("_", " ").capitalize(), "type": "object", "properties": {}})
        for other in defs.values():
            if other is not group:
                other.get("properties", {}).pop(p.name, None)
        entry = group["properties"].setdefault(p.name, {})
        for key in SCHEMA_KEYS:
            entry.pop(key, None)
        group["properties"][p.name] = {**schema_property(p), **entry}
    names = {p.name for p in pipeline_params()} | set(NEXTFLOW_ONLY) | {"outdir"}
    for group in defs.values():
        for stale in [n for n in group.get("properties", {}) if n not in names]:
            del group["properties"][stale]
    return schema


def nextflow_defaults(config_text: str) -> dict[str, str]:
    """``name = value`` lines of a ``params { }`` block, as text (for the test that compares them)."""
    return dict(re.findall(r"^\s*(\w+)\s*=\s*(.+?)\s*$", config_text, re.M))


def groovy_literal(value: Any) -> str:
    """How a default is written in nextflow.config."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return f"'{value}'"


def _shown(value: Any) -> str:
    return "" if value is None or value == () else f"`{str(value).lower() if isinstance(value, bool) else value}`"


def parameters_page() -> str:
    """docs/parameters.md: every parameter, its three spellings, its steps and default, from this table."""
    lines = ["# Parameters", "", f"<!-- {GENERATED_NOTE} -->", "",
             "One table for both routes and the Python API. A pipeline parameter is `--<name>` to Nextflow and to",
             "`causalged run` (dashes for underscores: `--n_folds` / `--n-folds`); a step command (`causalged <step>`) and",
             "the step functions (`causalged.steps.<step>.run`) take it by its keyword. Old spellings still accepted for one",
             "release are listed under *also*. Nextflow-only parameters (containers, Slurm, MultiQC, nf-core options) are in",
             "[usage.md](usage.md#parameters).", "",
             "## Pipeline parameters (Nextflow and `causalged run`)", "",
             "| Nextflow / `causalged run` | step option | steps | default | meaning |", "|---|---|---|---|---|"]
    for p in run_params():
        steps = ", ".join(x for x in p.steps if x != "run") or "(the route)"
        also = f" (also {', '.join(f'`{a}`' for a in p.aliases)})" if p.aliases else ""
        nf_name = f"`--{p.name}`" if p.nf else "(`causalged run` only)"
        lines.append(f"| {nf_name} / `{p.flag_for('run')}` | `{p.flag}`{also} | {steps} | {_shown(p.default)} | {p.help} |")
    lines += ["", "## Step options (a step's own files and switches, not pipeline parameters)", "",
              "| option | steps | default | meaning |", "|---|---|---|---|"]
    for p in PARAMS:
        if p.nf or "run" in p.steps and len(p.steps) == 1:
            continue
        if p.kind == ARGUMENT:
            name = p.name.upper() + "..."
        else:
            name = p.flag + (f" (also {', '.join(p.aliases)})" if p.aliases else "")
        lines.append(f"| `{name}` | {', '.join(x.replace('_', '-') for x in p.steps)} | {_shown(p.default)} | {p.help} |")
    return "\n".join(lines) + "\n"


def write_generated(repo: Path) -> list[Path]:
    """Write conf/ext_args.config, docs/parameters.md and the parameter entries of nextflow_schema.json; the paths changed."""
    changed = []
    for path, text in ((repo / "conf" / "ext_args.config", ext_args_config()), (repo / "docs" / "parameters.md", parameters_page())):
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    schema_path = repo / "nextflow_schema.json"
    before = schema_path.read_text()
    after = json.dumps(update_schema(json.loads(before)), indent=4) + "\n"
    if after != before:
        schema_path.write_text(after)
        changed.append(schema_path)
    return changed


if __name__ == "__main__":
    import sys

    repo = Path(__file__).resolve().parents[1]
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m causalged.params --write   (rewrites conf/ext_args.config, docs/parameters.md and nextflow_schema.json)")
    for path in write_generated(repo):
        print(f"wrote {path}")
