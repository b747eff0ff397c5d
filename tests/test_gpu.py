"""GPU tasks on shared nodes (causalged.model.gpu, causalged.device): the assigned GPU, batch
sizing from its total memory, and the CUDA out-of-memory exit that the pipeline retries with half
the batch.

No GPU is needed: torch.cuda is replaced where a test needs a GPU to be seen.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from causalged import device as devices
from causalged.errors import InputError
from causalged.model import gpu, training

GB = 1024**3


def test_batch_budget_is_a_share_of_the_assigned_gpus_total_memory(monkeypatch):
    """Free memory is never read: another task on the GPU may be about to take it."""
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=10 * GB))

    def free_memory(*_args):
        raise AssertionError("batch size sized from the memory free at start")

    monkeypatch.setattr(torch.cuda, "mem_get_info", free_memory)
    assert training.memory_budget(torch.device("cuda")) == int(gpu.GPU_MEMORY_FRACTION * 10 * GB)


@pytest.mark.parametrize("scale, expected", [(None, 64), ("1", 64), ("0.5", 32), ("0.25", 16), ("0.001", 1)])
def test_batch_scale_lowers_the_chosen_batch(monkeypatch, scale, expected):
    monkeypatch.setattr(training, "memory_budget", lambda device: 10 * GB)
    monkeypatch.setattr(training, "bytes_per_gene", lambda module: 1)
    if scale is None:
        monkeypatch.delenv(gpu.BATCH_SCALE_ENV, raising=False)
    else:
        monkeypatch.setenv(gpu.BATCH_SCALE_ENV, scale)
    assert training.auto_batch_size(None, 64, 500, torch.device("cpu")) == expected


@pytest.mark.parametrize("bad", ["0", "-1", "2", "half"])
def test_bad_batch_scale_is_an_input_error(monkeypatch, bad):
    monkeypatch.setenv(gpu.BATCH_SCALE_ENV, bad)
    with pytest.raises(InputError, match=gpu.BATCH_SCALE_ENV):
        gpu.batch_scale()


def test_task_uses_and_names_the_gpu_its_scheduler_assigned(monkeypatch, caplog):
    """With CUDA_VISIBLE_DEVICES=3,5 (Slurm --gres), `cuda` is device 0 of those: physical GPU 3."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with caplog.at_level(logging.INFO, logger="causalged.device"):
        device = devices.resolve_device("auto")
    assert device == torch.device("cuda") and device.index is None
    assert "GPU 3 of CUDA_VISIBLE_DEVICES=3,5" in caplog.text
    assert devices.describe_device(torch.device("cuda:1")) == "cuda:1 (GPU 5 of CUDA_VISIBLE_DEVICES=3,5)"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert devices.describe_device(torch.device("cuda")) == "cuda"


def test_cuda_oom_exits_75_and_other_errors_pass_through(capsys):
    def oom():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(SystemExit) as stopped:
        gpu.run_exiting_on_cuda_oom(oom)
    assert stopped.value.code == gpu.EXIT_CUDA_OOM == 75
    assert f"{gpu.BATCH_SCALE_ENV}=0.5" in capsys.readouterr().err

    def plain_oom():
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")

    with pytest.raises(SystemExit):
        gpu.run_exiting_on_cuda_oom(plain_oom)

    def other():
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError):
        gpu.run_exiting_on_cuda_oom(other)


@pytest.mark.parametrize("step", ["train", "impute", "crossval"])
def test_model_step_scripts_exit_75_on_cuda_oom(step, tmp_path):
    """The bin/ entry points Nextflow runs turn a CUDA OOM raised inside the command into exit 75."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bin" / f"causalged-{step}"
    driver = (
        "import runpy, sys, torch, causalged.cli as cli\n"
        "def boom(step):\n"
        "    raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 1 GiB')\n"
        "cli.run_step = boom\n"
        f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 75, result.stderr[-2000:]
