"""Cross-validation step: one fold of held-out panel genes, every method, ``<sample>.fold<K>.predictions.h5ad``.

The fold's genes are removed from the ST input (re-normalized from the training genes' raw
counts) and predicted from their scRNA-seq vectors alone, so no method ever sees a test gene's
spatial values. The diffusion models are sampled as the impute step samples them, so the scores
and intervals that reach the imputed genes are those of production.
"""

from __future__ import annotations

from pathlib import Path

from causalged.errors import InputError
from causalged.methods import MODEL_METHODS


def outputs(sample: str, outdir: str | Path, *, fold: int) -> dict[str, Path]:
    """The file this step writes (the name modules/local/crossval declares)."""
    return {"predictions": Path(outdir) / f"{sample}.fold{fold}.predictions.h5ad"}


def model_overrides(epochs: int | None = None, sampler: str = "ddim", sampling_steps: int = 50, inference_mode: str | None = None) -> dict:
    """Per-method settings: the diffusion models' epochs and sampling.

    ``sampling_steps`` 0 means all T (ddpm); ``inference_mode`` None keeps each method's own.
    causalged_nomask has no causal mask to sample group by group along, so it always gets one_group.
    """
    settings = {"sampler": sampler, "steps": sampling_steps or None, "mode": inference_mode, **({"epochs": epochs} if epochs else {})}
    return {m: {**settings, "mode": "one_group"} if m == "causalged_nomask" else dict(settings) for m in MODEL_METHODS}


def run(*, sample: str, sc: Path, st: Path, split: Path, fold: int, outdir: Path = Path("."), seed: int = 0, preset: str = "cpu",
        device: str = "auto", epochs: int | None = None, n_samples: int = 8, sampler: str = "ddim", sampling_steps: int = 50,
        inference_mode: str | None = None, methods: str | None = None) -> Path:
    """One fold -> ``<sample>.fold<K>.predictions.h5ad``. A reference above the stream limit
    stays on disk: the fold reads its genes in one pass of row blocks (causalged/stream.py)."""
    from causalged.device import resolve_device
    from causalged.evaluation.crossval import load_inputs, run_fold
    from causalged.io import check_writable, ensure_not_input, write_h5ad_atomic
    from causalged.methods import parse_methods
    from causalged.stream import read_reference

    chosen = parse_methods(methods)
    resolve_device(device)  # --device cuda without a GPU is an error before any work, whatever the methods
    check_writable(outdir)  # before the fold's training, not after it
    with read_reference(sc, layers=False) as reference:
        sc_data, st_data, gene_split = load_inputs(sc, st, split, sc_data=reference)
        if not 0 <= fold < len(gene_split["folds"]):
            raise InputError(split, f"fold {fold} does not exist (the split has {len(gene_split['folds'])} folds, 0-based)",
                             f"pass --fold between 0 and {len(gene_split['folds']) - 1}")
        path = outputs(sample, outdir, fold=fold)["predictions"]
        ensure_not_input(path, [sc, st, split])
        result = run_fold(sc_data, st_data, gene_split, fold, methods=chosen, seed=seed, n_samples=n_samples, preset=preset, device=device,
                          overrides=model_overrides(epochs, sampler, sampling_steps, inference_mode))
    result.uns["sample"] = sample
    return write_h5ad_atomic(result, path)
