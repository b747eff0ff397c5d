"""How many threads the numerical libraries use: the task's CPUs, not the node's cores.

A step on a shared node (a Slurm or Nextflow task with 2 of 64 cores, a laptop shared with
other work) must not start one BLAS and one torch thread per core of the machine. The number
comes from ``causalged --cpus N``, else ``CAUSALGED_CPUS``, else ``OMP_NUM_THREADS`` (the
Nextflow modules export ``task.cpus`` there), else the cores this process may run on.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

#: Variables read by OpenMP, OpenBLAS, MKL and numexpr when a library starts (and by child processes).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def available_cpus() -> int:
    """The CPUs this process is meant to use (see the module docstring); at least 1."""
    for variable in ("CAUSALGED_CPUS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_threads(cpus: int | None = None) -> int:
    """Limit BLAS/OpenMP and torch to ``cpus`` threads (default :func:`available_cpus`), in this
    process (libraries already loaded too) and in the processes it starts; returns the number."""
    cpus = max(1, int(cpus or available_cpus()))
    os.environ["CAUSALGED_CPUS"] = str(cpus)
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(cpus)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(cpus)
    except ImportError:  # scikit-learn brings threadpoolctl; without it the variables still reach new processes
        log.debug("threadpoolctl not installed: BLAS already loaded keeps its thread count")
    if "torch" in sys.modules:  # a later `import torch` reads OMP_NUM_THREADS itself
        sys.modules["torch"].set_num_threads(cpus)
    return cpus
