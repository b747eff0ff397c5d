"""The training loop: phases, optimiser schedule, early stopping, checkpoints and exact resume.

- Phases: with ``joint_decoder=False`` (the paper's better ablation) the autoencoder is fitted
  alone first, then frozen while the transformer trains on its latents; with ``True`` both
  losses train together, the diffusion target detached so it cannot shrink the latent.
- Schedule: AdamW; per phase a linear warm-up, then a cosine decay to a floor, so the learning
  rate is spent across the whole run rather than at its start.
- Epochs: a pass over the training genes is repeated up to ``min_steps_per_epoch`` steps, so a
  patience in epochs spans a useful range of noise levels even with few genes.
- Early stopping: the model is judged by what it is for, the PCC of the validation genes it
  generates (the autoencoder phase by its validation reconstruction); the best weights return.
- Device and memory: bf16 autocast on CUDA; the batch is sized from a share of the RAM or of
  the GPU's total memory (:func:`auto_batch_size`); the device itself is :mod:`causalged.device`.
- Resume: a checkpoint holds everything that changes, so a run resumed after a kill ends
  exactly where the uninterrupted run ends. Details: docs/method-notes.md.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from causalged.errors import InputError
from causalged.model.gpu import GPU_MEMORY_FRACTION, batch_scale
from causalged.io import atomic_write
from causalged.model.encoder import reparameterize
from causalged.model.module import CausalGeDModule

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    min_lr_fraction: float = 0.1
    joint_decoder: bool = False
    ae_fraction: float = 0.3
    patience: int | None = None
    checkpoint_every: int = 50
    grad_clip: float = 1.0
    min_steps_per_epoch: int = 10
    val_every: int = 5
    val_samples: int = 4
    val_steps: int = 20


class GeneSet(NamedTuple):
    """Gene-major training data: ``st`` (genes, spots) and ``sc`` (genes, cells or metacells)."""

    st: torch.Tensor
    sc: torch.Tensor


# --------------------------------------------------------------------------- memory
def memory_budget(device: torch.device) -> int:
    """Bytes the training step may use: 60 % of the GPU's total memory, 30 % of available RAM.

    The GPU's total, not its free memory: tasks sharing a GPU would otherwise size themselves
    from memory that a task starting at the same time is about to take.
    """
    if device.type == "cuda":
        return int(GPU_MEMORY_FRACTION * torch.cuda.get_device_properties(device).total_memory)
    try:
        with open("/proc/meminfo") as handle:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle}
        return int(0.3 * info["MemAvailable"])
    except (OSError, KeyError, ValueError):
        return 4 * 1024**3


def bytes_per_gene(module: CausalGeDModule) -> int:
    """A conservative estimate of one gene's training activations (longest masked sequence)."""
    cat = module.cat
    seq = cat.n_cond + 2 * cat.n_tokens - 1
    heads = cat.blocks[0].attn.heads if len(cat.blocks) else 1
    per_block = seq * cat.hidden * 4 * 12 + heads * seq * seq * 4 * 3
    encoder = (module.decoder.net[-1].out_features + module.encoder.e2[0].in_features) * 4 * 8
    return len(cat.blocks) * per_block + encoder


def auto_batch_size(module: CausalGeDModule, requested: int, n_genes: int, device: torch.device) -> int:
    """The requested batch size, lowered to fit the memory budget and the number of genes, then
    scaled by ``CAUSALGED_BATCH_SCALE`` (a retry after running out of GPU memory)."""
    fitting = max(1, memory_budget(device) // bytes_per_gene(module))
    size = max(1, min(requested, n_genes, fitting))
    if size < min(requested, n_genes):
        log.warning("batch size lowered from %d to %d to fit in memory on %s", requested, size, device)
    scale = batch_scale()
    if scale < 1:
        scaled = max(1, int(size * scale))
        log.warning("batch size %d scaled by %g to %d (CAUSALGED_BATCH_SCALE)", size, scale, scaled)
        size = scaled
    return size


# --------------------------------------------------------------------------- schedule
def phase_plan(settings: TrainSettings) -> list[str]:
    """The phase of every epoch: 'joint', or 'autoencoder' epochs then 'diffusion' epochs."""
    if settings.joint_decoder:
        return ["joint"] * settings.epochs
    n_ae = min(max(1, round(settings.ae_fraction * settings.epochs)), settings.epochs - 1) if settings.epochs > 1 else 0
    return ["autoencoder"] * n_ae + ["diffusion"] * (settings.epochs - n_ae)


def lr_factor(step: int, total: int, *, warmup_fraction: float, min_fraction: float) -> float:
    """Linear warm-up then cosine decay to ``min_fraction`` at the last step (never to zero)."""
    warmup = max(1, round(warmup_fraction * total))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup - 1)
    return min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


# --------------------------------------------------------------------------- one epoch
def _encode_all(module: CausalGeDModule, data: GeneSet, batch_size: int):
    """Encoder means / log-variances for every gene (no gradient), in batches."""
    parts = []
    with torch.no_grad():
        for start in range(0, data.st.shape[0], batch_size):
            mean_st, logvar_st = module.encoder.encode_st(data.st[start:start + batch_size])
            mean_sc, _ = module.encoder.encode_sc(data.sc[start:start + batch_size])
            parts.append((mean_st, logvar_st, mean_sc))
    mean_st = torch.cat([p[0] for p in parts])
    logvar_st = torch.cat([p[1] for p in parts]) if parts[0][1] is not None else None
    return mean_st, logvar_st, torch.cat([p[2] for p in parts])


def _batch_loss(module: CausalGeDModule, phase: str, data: GeneSet, latents, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if phase == "autoencoder":
        return module.autoencoder_loss(data.st[idx], data.sc[idx], generator=generator)[0]
    if phase == "diffusion":  # frozen ST latents, condition from the e2 head being trained
        mean_st, logvar_st, _ = latents
        z_st = reparameterize(mean_st[idx], None if logvar_st is None else logvar_st[idx], generator=generator)
        return module.diffusion_loss(z_st, module.encoder.encode_sc(data.sc[idx])[0], generator=generator)
    ae_loss, (mean_st, logvar_st, mean_sc) = module.autoencoder_loss(data.st[idx], data.sc[idx], generator=generator)
    z_st = reparameterize(mean_st, logvar_st, generator=generator).detach()
    return ae_loss + module.diffusion_loss(z_st, mean_sc, generator=generator)


def _run_epoch(module, optimizer, scaler, phase, data, latents, *, batch_size, lr_at, first_step, generator, settings, amp_dtype) -> tuple[float, float]:
    """Passes over the training genes in seeded random orders (see Epochs); returns (mean loss, last lr)."""
    module.train()
    device = data.st.device
    batches = _epoch_batches(data.st.shape[0], batch_size, settings.min_steps_per_epoch, generator)
    total, count, lr = 0.0, 0, settings.lr
    for i, idx in enumerate(batches):
        idx = idx.to(device)
        lr = lr_at(first_step + i)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = _batch_loss(module, phase, data, latents, idx, generator)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.grad is not None], settings.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        total += float(loss.detach()) * len(idx)
        count += len(idx)
    return total / count, lr


def steps_per_epoch(n_genes: int, batch_size: int, min_steps: int) -> int:
    """Optimiser steps in one epoch: whole passes over the genes, at least ``min_steps``."""
    per_pass = math.ceil(n_genes / batch_size)
    return per_pass * max(1, math.ceil(min_steps / per_pass))


def _epoch_batches(n_genes: int, batch_size: int, min_steps: int, generator: torch.Generator) -> list[torch.Tensor]:
    per_pass = math.ceil(n_genes / batch_size)
    batches = []
    for _ in range(steps_per_epoch(n_genes, batch_size, min_steps) // per_pass):
        order = torch.randperm(n_genes, generator=generator)
        batches += list(order.split(batch_size))
    return batches


def _pearson_rows(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    pred = pred - pred.mean(1, keepdim=True)
    truth = truth - truth.mean(1, keepdim=True)
    return (pred * truth).sum(1) / ((pred * pred).sum(1) * (truth * truth).sum(1)).sqrt().clamp_min(1e-12)


def sampled_pcc(module: CausalGeDModule, val: GeneSet, *, seed: int, n_samples: int, steps: int) -> tuple[float, float]:
    """Generate the validation genes from their scRNA-seq vectors, as imputation does.

    Returns (mean per-gene Pearson r of the sample mean with the ST truth, fraction of latent
    entries the sampler clipped). Fixed seed, DDIM, one group: comparable across epochs.
    """
    module.eval()
    with torch.no_grad():
        cond = module.condition_latent(val.sc).repeat_interleave(n_samples, dim=0)
        z = module.sample_latents(cond, sampler="ddim", steps=steps, generator=torch.Generator().manual_seed(seed + 104729))
        pred = module.decode(z).float().view(val.st.shape[0], n_samples, -1).mean(1)
    return float(_pearson_rows(pred, val.st).mean()), module.last_clipped_fraction


def _cross_pcc(module: CausalGeDModule, val: GeneSet) -> float:
    """Mean per-gene Pearson r of decoder(e2 mean) with the ST vector: how well the condition transfers."""
    module.eval()
    with torch.no_grad():
        pred = module.decode(module.condition_latent(val.sc)).float()
    return float(_pearson_rows(pred, val.st).mean())


def _validation_loss(module: CausalGeDModule, phase: str, val: GeneSet, *, seed: int, batch_size: int) -> float:
    """The phase's loss on the validation genes with the same random draws at every call."""
    module.eval()
    generator = torch.Generator().manual_seed(seed + 7919)
    repeats = max(1, min(4, math.ceil(128 / val.st.shape[0])))  # average out the timestep draw
    total, count = 0.0, 0
    with torch.no_grad():
        if phase == "autoencoder":
            for start in range(0, val.st.shape[0], batch_size):
                sl = slice(start, start + batch_size)
                total += float(module.autoencoder_loss(val.st[sl], val.sc[sl], generator=generator)[0]) * val.st[sl].shape[0]
                count += val.st[sl].shape[0]
            return total / count
        mean_st, _, mean_sc = _encode_all(module, val, batch_size)
        mean_st, mean_sc = mean_st.repeat(repeats, 1), mean_sc.repeat(repeats, 1)
        for start in range(0, mean_st.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            total += float(module.diffusion_loss(mean_st[sl], mean_sc[sl], generator=generator)) * mean_st[sl].shape[0]
            count += mean_st[sl].shape[0]
    return total / count


# --------------------------------------------------------------------------- the loop
def fit(
    module: CausalGeDModule,
    train: GeneSet,
    val: GeneSet | None,
    *,
    settings: TrainSettings,
    device: torch.device,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Train ``module`` in place; returns one history record per epoch.

    ``resume`` refuses (InputError) a checkpoint made on other data or with another seed:
    continuing it would record this run's seed beside another run's model.
    """
    fingerprint = data_fingerprint(train, val, seed)
    module.to(device)
    train = GeneSet(train.st.to(device), train.sc.to(device))
    val = GeneSet(val.st.to(device), val.sc.to(device)) if val is not None and val.st.shape[0] else None
    plan = phase_plan(settings)
    n_genes = train.st.shape[0]
    epoch_steps = steps_per_epoch(n_genes, settings.batch_size, settings.min_steps_per_epoch)
    phase_start = {phase: plan.index(phase) for phase in dict.fromkeys(plan)}
    phase_steps = {phase: plan.count(phase) * epoch_steps for phase in phase_start}

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(module.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    amp_dtype = None
    if device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    state = {"epoch": 0, "history": [], "best_val": -math.inf, "best_state": None, "bad_epochs": 0, "stopped": False,
             "best_ae_val": math.inf, "best_ae_state": None}

    checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    if resume and checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)  # RNG states must stay on the CPU
        _check_resumable(checkpoint, saved.get("fingerprint"), fingerprint)
        if saved["settings"] != asdict(settings):
            log.warning("resuming with settings that differ from the checkpoint's: %s vs %s", asdict(settings), saved["settings"])
        module.load_state_dict(saved["module"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        state = saved["state"]
        log.info("resumed from %s after epoch %d", checkpoint, state["epoch"])
    elif resume:
        log.warning("--resume: no checkpoint in %s, starting from scratch", checkpoint_dir)

    latents = None
    bar = tqdm(total=settings.epochs, initial=state["epoch"], disable=not progress, desc="training", unit="epoch",
               leave=False, mininterval=2.0)
    try:
        for epoch in range(state["epoch"], settings.epochs):
            if state["stopped"]:
                break
            phase = plan[epoch]
            began = time.perf_counter()
            if phase == "diffusion" and epoch == phase_start["diffusion"] and state["best_ae_state"] is not None:
                module.load_state_dict(state["best_ae_state"])  # the autoencoder epoch that generalised best
            module.set_phase(phase)
            if phase == "joint" or (phase == "diffusion" and latents is None):
                latents = _encode_all(module, train, settings.batch_size)  # fixed e1 in 'diffusion': once
                module.set_latent_scale(latents[0])
            total_steps = phase_steps[phase]

            def lr_at(step: int, _total=total_steps) -> float:
                return settings.lr * lr_factor(step, _total, warmup_fraction=settings.warmup_fraction, min_fraction=settings.min_lr_fraction)

            train_loss, lr = _run_epoch(
                module, optimizer, scaler, phase, train, latents, batch_size=settings.batch_size, lr_at=lr_at,
                first_step=(epoch - phase_start[phase]) * epoch_steps, generator=generator, settings=settings, amp_dtype=amp_dtype,
            )
            record = {"epoch": epoch + 1, "phase": phase, "train_loss": train_loss, "lr": lr,
                      "val_loss": math.nan, "val_cross_pcc": math.nan, "val_pcc": math.nan, "clipped_fraction": math.nan}
            validation_epoch = (epoch - phase_start[phase] + 1) % settings.val_every == 0 or epoch + 1 == settings.epochs
            if val is not None and (phase == "autoencoder" or validation_epoch):
                record["val_loss"] = _validation_loss(module, phase, val, seed=seed, batch_size=settings.batch_size)
                if phase == "autoencoder":
                    record["val_cross_pcc"] = _cross_pcc(module, val)
                    score = -record["val_cross_pcc"] if module.cross_reconstruction else record["val_loss"]
                    if score < state["best_ae_val"]:
                        state["best_ae_val"] = score
                        state["best_ae_state"] = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
                else:
                    record["val_pcc"], record["clipped_fraction"] = sampled_pcc(module, val, seed=seed, n_samples=settings.val_samples,
                                                                                steps=settings.val_steps)
                    if record["val_pcc"] > state["best_val"]:
                        state["best_val"], state["bad_epochs"] = record["val_pcc"], 0
                        state["best_state"] = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
                    else:
                        state["bad_epochs"] += settings.val_every
                        if settings.patience is not None and state["bad_epochs"] >= settings.patience:
                            state["stopped"] = True
                            log.info("early stopping after epoch %d (validation PCC not better for %d epochs)", epoch + 1, settings.patience)
            record["seconds"] = time.perf_counter() - began
            state["history"].append(record)
            state["epoch"] = epoch + 1
            bar.update(1)
            bar.set_postfix(phase=phase, loss=f"{train_loss:.4f}", val=f"{record['val_loss']:.4f}", best_pcc=f"{state['best_val']:.3f}")
            last = state["epoch"] == settings.epochs or state["stopped"]
            if checkpoint is not None and (state["epoch"] % settings.checkpoint_every == 0 or last):
                _save_checkpoint(checkpoint, module, optimizer, scaler, generator, state, settings, fingerprint)
    finally:
        bar.close()
    if state["best_state"] is not None:
        module.load_state_dict(state["best_state"])
    module.set_phase("joint")  # leave every parameter trainable, as a fresh module is
    return state["history"]


def data_fingerprint(train: GeneSet, val: GeneSet | None, seed: int) -> dict:
    """What a checkpoint was trained on: the seed, the gene count and a digest of every value."""
    digest = hashlib.sha256()
    for tensor in (*train, *(val or ())):
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return {"seed": int(seed), "n_genes": int(train.st.shape[0]), "data": digest.hexdigest()[:16]}


def _check_resumable(checkpoint: Path, saved: dict | None, current: dict) -> None:
    if saved == current:
        return
    if saved is None:
        problem = "the checkpoint does not record the data and seed it was trained on (written by an older version)"
    elif saved["seed"] != current["seed"]:
        problem = f"the checkpoint was trained with seed {saved['seed']}, but this run asks for seed {current['seed']}"
    else:
        problem = (f"the checkpoint was trained on other data ({saved['n_genes']} genes, digest {saved['data']}; "
                   f"now {current['n_genes']} genes, digest {current['data']})")
    raise InputError(checkpoint, f"{problem}; resuming would continue that model", "resume with the same inputs and --seed, "
                     f"or train without --resume (it starts afresh and replaces {checkpoint.name})")


def _save_checkpoint(path: Path, module, optimizer, scaler, generator, state, settings, fingerprint: dict) -> None:
    payload = {
        "fingerprint": fingerprint,
        "module": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "state": copy.deepcopy(state),
        "settings": asdict(settings),
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
