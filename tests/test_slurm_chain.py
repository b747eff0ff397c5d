"""The test profile's steps as Slurm jobs on a one-node cluster on loopback (tests/slurm/run_chain.py).

Not a Nextflow run: each module's script is rendered by the project's config reader
(tests/nf/render.groovy) and submitted with ``sbatch`` and the cpus/memory/time that conf/base.config,
conf/test.config and conf/slurm.config give its process, chained by ``--dependency=afterok``.
Skipped where slurm (apt-get install slurm-wlm) or root is missing, unless CAUSALGED_REQUIRE_SLURM
is set (CI sets it): then that fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nf import nfsource

REPO = nfsource.REPO
SCRIPT = REPO / "tests" / "slurm" / "run_chain.py"
REQUIRE_ENV = "CAUSALGED_REQUIRE_SLURM"
sys.path.insert(0, str(SCRIPT.parent))

import run_chain  # noqa: E402


def _require_slurm():
    missing = run_chain.slurm_missing()
    reason = f"slurm is not installed (missing {', '.join(missing)}; apt-get install slurm-wlm)" if missing else (
        "the loopback cluster needs root" if os.geteuid() != 0 else None)
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason}; {REQUIRE_ENV} is set, so this check may not be skipped")
    pytest.skip(reason)


def test_requests_come_from_the_configs_and_fit_the_test_profile():
    """Rendered, not retyped: the label closures at attempt 1, capped by the test profile's resourceLimits."""
    nfsource.require_groovy()
    procs = {p.name: p for p in nfsource.processes()}
    renderer = nfsource.Renderer()
    try:
        resources = run_chain.render_resources(renderer, procs, node_cpus=64, node_mem_mb=10**6)
        small = run_chain.render_resources(renderer, procs, node_cpus=1, node_mem_mb=4096)
    finally:
        renderer.close()
    assert set(resources) == set(procs)
    for name, r in resources.items():
        assert r.label in procs[name].labels
        assert (r.sbatch_cpus, r.mem_mb, r.minutes) == (min(r.cpus, 2), min(run_chain.parse_memory_mb(r.memory), 6144),
                                                       min(run_chain.parse_minutes(r.time), 60)), name
        assert r.queue is None and r.cluster_options == ""  # test profile: no partition, account or GPU
        assert not r.scaled
    assert resources["MULTIQC"].sbatch_cpus == 1  # process_single
    assert resources["CAUSALGED_TRAIN"].limited["cpus"] == ("4", "2")  # process_model asks for more than the profile allows
    assert all(r.sbatch_cpus == 1 and r.mem_mb == 4096 and "memory" in r.scaled for r in small.values())


@pytest.mark.slow
def test_slurm_chain_runs_every_step(tmp_path):
    nfsource.require_groovy()
    _require_slurm()
    report = tmp_path / "chain.json"
    result = subprocess.run(["nice", "-n", "10", sys.executable, str(SCRIPT), "--workdir", str(tmp_path / "run"), "--json", str(report),
                             "--summary", str(tmp_path / "chain.md")], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"the Slurm chain failed (exit {result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    chain = json.loads(report.read_text())
    assert chain["problems"] == []
    tasks = chain["tasks"]
    assert {t["process"] for t in tasks.values()} == {p.name for p in nfsource.processes()}
    assert all(t["state"] == "COMPLETED" and t["exit"] == "0:0" for t in tasks.values())
    assert len(tasks["MULTIQC"]["after"]) == len(tasks) - 1  # the report waits for every step
    assert (tmp_path / "run" / "work" / "MULTIQC" / "multiqc_report.html").is_file()
