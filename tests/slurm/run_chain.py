#!/usr/bin/env python3
"""Run the test profile's steps as a chain of Slurm jobs on a one-node cluster on loopback.

This is NOT a Nextflow run (Nextflow cannot be installed here). It proves that the steps, the
resource requests the configs give them and a real Slurm scheduler agree:

* the cpus/memory/time of every process are rendered from conf/base.config (its label's closures,
  attempt 1), capped by the test profile's resourceLimits (conf/test.config), and its queue and
  clusterOptions from conf/slurm.config, by the project's own config reader (tests/nf/render.groovy,
  the Groovy of the Nextflow language server), never retyped;
* every module's script section is rendered on the committed tiny data (tests/data/) as the contract
  test renders it (tests/test_nextflow_contract.py: same params, ext.args, wiring), staged in a task
  folder, and submitted with ``sbatch --cpus-per-task --mem --time [-p] [clusterOptions]`` after the
  jobs it reads from (``--dependency=afterok:...``, ``--kill-on-invalid-dep=yes``), as Nextflow's
  Slurm executor would submit it (one job per task, the cross-validation folds as separate jobs);
* each job must finish COMPLETED with exit 0 under the limits it asked for, every declared output
  must exist, the h5ad files must open and the MultiQC report must carry every section.

The cluster (slurmctld + slurmd, AuthType=auth/none, state and logs in a temporary folder, ports
picked free) is started as root and stopped by PID at the end. Requests larger than the node are
scaled down to the node and the output says so.

Usage: python tests/slurm/run_chain.py [--workdir DIR] [--keep] [--summary FILE.md] [--json FILE]
Exit status 0 when every job completed and every output checks out; 2 when slurm is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from nf import nfsource  # noqa: E402

import test_nextflow_contract as contract  # noqa: E402  (the wiring and rendering the contract test uses)

SLURM_TOOLS = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol")
MEM_UNITS = {"B": 1 / 2**20, "KB": 1 / 2**10, "MB": 1, "GB": 2**10, "TB": 2**20}
TIME_UNITS = {"ms": 1 / 60000, "s": 1 / 60, "m": 1, "h": 60, "d": 1440}


def slurm_missing() -> list[str]:
    return [t for t in SLURM_TOOLS if not shutil.which(t)]


def log(msg: str):
    print(f"[slurm-chain {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- resources from the configs


def parse_memory_mb(text: str) -> int:
    number, unit = text.split()
    return max(1, int(round(float(number) * MEM_UNITS[unit])))


def parse_minutes(text: str) -> int:
    m = re.fullmatch(r"([\d.]+)(ms|s|m|h|d)", text.strip())
    return max(1, int(-(-float(m.group(1)) * TIME_UNITS[m.group(2)] // 1)))  # round up, as Nextflow's -t does


@dataclass
class Resources:
    label: str
    cpus: int     # as the config renders it, before resourceLimits
    memory: str   # as the config renders it ("12 GB")
    time: str     # ("4h")
    limited: dict = field(default_factory=dict)  # directive -> (requested, limit) where resourceLimits capped it
    scaled: dict = field(default_factory=dict)   # directive -> (after limits, node) where the node was smaller
    sbatch_cpus: int = 0
    mem_mb: int = 0
    minutes: int = 0
    queue: str | None = None
    cluster_options: str = ""

    def sbatch_options(self) -> list[str]:
        opts = [f"--cpus-per-task={self.sbatch_cpus}", f"--mem={self.mem_mb}M", f"--time={self.minutes}"]
        if self.queue:
            opts.append(f"--partition={self.queue}")
        return opts + shlex.split(self.cluster_options)


def render_resources(renderer, procs, node_cpus: int, node_mem_mb: int) -> dict[str, Resources]:
    """cpus/memory/time of every process from base.config (+ the test profile's resourceLimits) and
    queue/clusterOptions from slurm.config, evaluated by render.groovy with the test profile's params."""
    base = nfsource.scope_block((REPO / "conf/base.config").read_text(), "process")
    test = nfsource.scope_block((REPO / "conf/test.config").read_text(), "process")
    slurm = nfsource.scope_block((REPO / "conf/slurm.config").read_text(), "process")
    # The profile's process scope is read after base.config's, so its resourceLimits wins.
    limits_src = _map_literal(test if "resourceLimits" in test else base)
    items = [{"key": f"limit:{d}", "source": f"({limits_src}).{d}", "scope": {}} for d in ("cpus", "memory", "time")]
    labels = {}
    for name, proc in procs.items():
        size = [lb for lb in proc.labels if lb != "process_gpu"]
        assert len(size) == 1, f"{name}: expected one resource label besides process_gpu, got {proc.labels}"
        labels[name] = size[0]
        block = nfsource.label_block(base, size[0])
        scope = {"task": {"attempt": 1, "process": f"CAUSALGED:{name}", "accelerator": None, "ext": {}}}
        for d in ("cpus", "memory", "time"):
            source = nfsource.closure_assignment(block, d) or nfsource.closure_assignment(base, d)
            items.append({"key": f"{name}:{d}", "source": source, "scope": scope})
        for d in ("queue", "clusterOptions"):  # CPU tasks: the test profile gives no accelerator
            items.append({"key": f"{name}:{d}", "source": nfsource.closure_assignment(slurm, d), "scope": scope})
    out = renderer.render({**contract._render_request(procs, []), "directives": items})["directives"]

    resources = {}
    for name in procs:
        r = Resources(labels[name], int(out[f"{name}:cpus"]), out[f"{name}:memory"], out[f"{name}:time"],
                      queue=out[f"{name}:queue"], cluster_options=out[f"{name}:clusterOptions"] or "")
        cpus, mem, minutes = r.cpus, parse_memory_mb(r.memory), parse_minutes(r.time)
        for d, value, limit in (("cpus", cpus, int(out["limit:cpus"])), ("memory", mem, parse_memory_mb(out["limit:memory"])),
                                ("time", minutes, parse_minutes(out["limit:time"]))):
            if value > limit:
                r.limited[d] = (str(getattr(r, d)), out[f"limit:{d}"])
        cpus = min(cpus, int(out["limit:cpus"]))
        mem = min(mem, parse_memory_mb(out["limit:memory"]))
        minutes = min(minutes, parse_minutes(out["limit:time"]))
        if cpus > node_cpus:
            r.scaled["cpus"] = (cpus, node_cpus)
            cpus = node_cpus
        if mem > node_mem_mb:
            r.scaled["memory"] = (f"{mem} MB", f"{node_mem_mb} MB")
            mem = node_mem_mb
        r.sbatch_cpus, r.mem_mb, r.minutes = cpus, mem, minutes
        resources[name] = r
    return resources


def _map_literal(process_body: str) -> str:
    """The ``resourceLimits = [ ... ]`` map literal of a process scope."""
    m = re.search(r"^\s*resourceLimits\s*=\s*\[", process_body, re.M)
    depth = 0
    for i in range(m.end() - 1, len(process_body)):
        depth += {"[": 1, "]": -1}.get(process_body[i], 0)
        if depth == 0:
            return process_body[m.end() - 1 : i + 1]
    raise ValueError("unbalanced resourceLimits")


# ----------------------------------------------------------------------------- the cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_hardware() -> dict[str, str]:
    """``slurmd -C``: what slurmd will find on this machine (so that the node is not drained)."""
    line = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    return dict(kv.split("=", 1) for kv in line.split())


class Cluster:
    """A one-node Slurm cluster on 127.0.0.1, its config, state and logs under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.hw = node_hardware()
        self.node = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    @property
    def cpus(self) -> int:
        return int(self.hw["CPUs"])

    @property
    def mem_mb(self) -> int:
        return int(self.hw["RealMemory"])

    def write_conf(self):
        for d in ("state", "spool", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        hw = " ".join(f"{k}={self.hw[k]}" for k in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory") if k in self.hw)
        self.conf.write_text("\n".join([
            "ClusterName=causalged-loopback",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/none",
            "CredType=cred/none",
            "MpiDefault=none",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",  # memory is a consumable: --mem is scheduled, not ignored
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=2",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "ReturnToService=2",
            "MinJobAge=3600",  # finished jobs stay visible to scontrol (there is no accounting database)
            "KillOnBadExit=1",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log/slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log/slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"NodeName={self.node} NodeAddr=127.0.0.1 {hw} State=UNKNOWN",
            "PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))

    def start(self, timeout: float = 60):
        self.write_conf()
        for daemon, argv in (("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", str(self.conf)]),
                             ("slurmd", ["slurmd", "-D", "-c", "-f", str(self.conf), "-N", self.node])):
            out = open(self.root / "log" / f"{daemon}.stdout", "w")
            self.procs[daemon] = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            time.sleep(1)
        deadline = time.time() + timeout
        while time.time() < deadline:
            for daemon, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{daemon} exited with {proc.returncode}:\n{self.logs()}")
            r = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip() in ("idle", "mixed", "allocated"):
                log(f"cluster up: node {self.node} ({self.cpus} CPUs, {self.mem_mb} MB), slurmctld pid {self.procs['slurmctld'].pid}, slurmd pid {self.procs['slurmd'].pid}")
                return
            time.sleep(1)
        raise RuntimeError(f"the node did not become idle in {timeout:.0f} s (sinfo: {r.stdout.strip() or r.stderr.strip()}):\n{self.logs()}")

    def logs(self, lines: int = 30) -> str:
        text = []
        for f in sorted((self.root / "log").glob("*")):
            tail = f.read_text(errors="replace").splitlines()[-lines:]
            text.append(f"--- {f.name}\n" + "\n".join(tail))
        return "\n".join(text)

    def stop(self):
        """Stop the daemons by PID (slurmd first), then any job steps they left."""
        for daemon in ("slurmd", "slurmctld"):
            proc = self.procs.get(daemon)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log("cluster stopped")

    def run(self, *argv: str) -> str:
        r = subprocess.run(list(argv), env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def job(self, job_id: str) -> dict[str, str]:
        text = self.run("scontrol", "show", "job", "-o", job_id)
        return dict(m.groups() for m in re.finditer(r"(\w+(?::\w+)?)=(\S*)", text))


# ----------------------------------------------------------------------------- the chain


@dataclass
class Task:
    key: str
    process: str
    meta: dict
    workdir: Path
    after: list[str]                 # keys of the tasks it reads from
    expressions: list[str] = field(default_factory=list)
    job_id: str = ""
    state: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)


def _upstream_tasks(tasks: dict[str, Task], process: str) -> list[Task]:
    return [t for t in tasks.values() if t.process == process]


def plan(procs, renderer, root: Path, n_folds: int) -> dict[str, Task]:
    """Stage and render every task of the test profile in workflow order (contract.WIRING)."""
    tasks: dict[str, Task] = {}
    outputs_of: dict[str, list[dict[str, list[str]]]] = {}  # process -> per task: emit -> output paths (rendered)
    for name in contract.ORDER:
        proc = procs[name]
        if name == "CAUSALGED_CROSSVALIDATE":
            metas = [(f"{name}_{k}", {**contract.META, "fold": k, "n_folds": n_folds}) for k in range(n_folds)]
        elif name == "MULTIQC":
            metas = [("MULTIQC", {"id": "causalged"})]
        else:
            metas = [(name, dict(contract.META))]
        outputs_of[name] = []
        for key, meta in metas:
            workdir = root / "work" / key
            workdir.mkdir(parents=True)
            bindings, after = {"meta": meta}, set()
            for var, source in contract.WIRING[name].items():
                if source == "mqc":
                    bindings[var] = []  # staged by the job itself: the names are globs (see _multiqc_prologue)
                    continue
                if source == "config":
                    files = [contract.MULTIQC_CONFIG]
                elif isinstance(source, str):
                    files = [contract.SAMPLE[source.split(":")[1]]]
                else:
                    upstream, emit, index = source
                    files = [Path(per_task[emit][index]) for per_task in outputs_of[upstream]]
                    after |= {t.key for t in _upstream_tasks(tasks, upstream)}
                staged = []
                for src in files:
                    (workdir / src.name).symlink_to(src)  # may dangle until the upstream job has run
                    staged.append(src.name)
                bindings[var] = staged if var == "predictions" else staged[0]
            rendered = renderer.render(contract._render_request(procs, [contract._task(proc, key, "script", bindings)]))["tasks"][key]
            (workdir / ".command.sh").write_text(rendered["text"])
            task = Task(key, name, meta, workdir, sorted(after), rendered["expressions"])
            if name == "MULTIQC":
                task.after = [t.key for t in tasks.values()]
            tasks[key] = task
            # output paths by emit (first pattern of each), for the steps downstream
            per_emit, exprs = {}, iter(rendered["expressions"])
            for out in proc.outputs:
                per_emit[out.emit] = [str(workdir / next(exprs)) for _ in out.patterns]
            outputs_of[name].append(per_emit)
    return tasks


def _multiqc_prologue(tasks: dict[str, Task], procs) -> str:
    """Stage the mqc/figures files of every upstream task (globs, as `stageAs: '?/*'`) and the
    collected versions, as the workflow does before MULTIQC."""
    lines = ["n=0", "stage() { for f in \"$@\"; do [ -e \"$f\" ] || continue; n=$((n + 1)); mkdir -p \"$n\"; ln -s \"$f\" \"$n/\"; done; }"]
    versions = []
    for task in tasks.values():
        if task.process == "MULTIQC":
            continue
        exprs = iter(task.expressions)
        for out in procs[task.process].outputs:
            for _ in out.patterns:
                pattern = next(exprs)
                if out.emit in ("mqc", "figures"):
                    lines.append(f"stage {shlex.quote(str(task.workdir))}/{pattern}")
        versions.append(shlex.quote(str(task.workdir / "versions.yml")))
    lines.append(f"cat {' '.join(versions)} | awk '!seen[$0]++' > causalged_software_mqc_versions.yml")
    lines.append("stage \"$PWD/causalged_software_mqc_versions.yml\"")
    return "\n".join(lines) + "\n"


def job_script(task: Task, prologue: str = "") -> str:
    """The batch script: like Nextflow's .command.run, run .command.sh in the task folder."""
    return f"""#!/bin/bash
# {task.key}: submitted by tests/slurm/run_chain.py (not by Nextflow)
set -u
cd {shlex.quote(str(task.workdir))}
echo "job $SLURM_JOB_ID on $SLURMD_NODENAME: cpus=$SLURM_CPUS_PER_TASK mem=${{SLURM_MEM_PER_NODE:-?}}M nice=$(nice)" > .command.info
{prologue}bash -C -e -u -o pipefail .command.sh > .command.out 2> .command.err
status=$?
echo $status > .exitcode
exit $status
"""


def submit(cluster: Cluster, tasks: dict[str, Task], resources: dict[str, Resources], procs) -> None:
    env = {**cluster.env, "PATH": f"{REPO / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    for task in tasks.values():
        prologue = _multiqc_prologue(tasks, procs) if task.process == "MULTIQC" else ""
        (task.workdir / ".command.run").write_text(job_script(task, prologue))
        argv = ["sbatch", "--parsable", f"--job-name=nf-{task.key}", f"--chdir={task.workdir}",
                f"--output={task.workdir / '.command.log'}", *resources[task.process].sbatch_options()]
        if task.after:
            argv += [f"--dependency=afterok:{':'.join(tasks[k].job_id for k in task.after)}", "--kill-on-invalid-dep=yes"]
        argv.append(str(task.workdir / ".command.run"))
        r = subprocess.run(argv, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"sbatch refused {task.key}: {r.stderr.strip()}\n{' '.join(argv)}")
        task.job_id = r.stdout.strip().split(";")[0]
        (task.workdir / ".command.sbatch").write_text(shlex.join(argv) + "\n")
        log(f"submitted {task.key} as job {task.job_id}: {' '.join(argv[4:-1])}")


def wait(cluster: Cluster, tasks: dict[str, Task], timeout: float) -> None:
    deadline, last = time.time() + timeout, {}
    final = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
    while time.time() < deadline:
        states = {k: cluster.job(t.job_id) for k, t in tasks.items()}
        for k, s in states.items():
            if last.get(k) != s.get("JobState"):
                log(f"{k} (job {tasks[k].job_id}): {s.get('JobState')} {s.get('Reason', '') if s.get('Reason') not in ('None', None) else ''}".rstrip())
                last[k] = s.get("JobState")
        if all(s.get("JobState") in final for s in states.values()):
            for k, s in states.items():
                tasks[k].state = s
            return
        time.sleep(2)
    subprocess.run(["scancel", *[t.job_id for t in tasks.values()]], env=cluster.env)
    raise TimeoutError(f"the chain did not finish in {timeout:.0f} s; jobs cancelled")


# ----------------------------------------------------------------------------- checks


def _hhmmss(minutes: int) -> str:
    days, rest = divmod(minutes, 1440)
    return (f"{days}-" if days else "") + f"{rest // 60:02d}:{rest % 60:02d}:00"


def check_outputs(tasks: dict[str, Task], procs, resources: dict[str, Resources]) -> list[str]:
    """Each job got the cpus/memory/time it asked for; every declared output exists; h5ad files
    open; the report has every section. Problems, or []."""
    import anndata as ad

    problems = []
    for task in tasks.values():
        s = task.state
        if s.get("JobState") != "COMPLETED" or s.get("ExitCode") != "0:0":
            err = (task.workdir / ".command.err")
            tail = err.read_text(errors="replace")[-2000:] if err.exists() else ""
            problems.append(f"{task.key}: job {task.job_id} {s.get('JobState')} exit {s.get('ExitCode')} ({s.get('Reason')})\n{tail}")
            continue
        # The scheduler gave the job what it asked for (the job's own view, and the controller's record).
        r = resources[task.process]
        info = (task.workdir / ".command.info").read_text()
        seen = dict(re.findall(r"(cpus|mem)=(\S+)", info))
        if seen != {"cpus": str(r.sbatch_cpus), "mem": f"{r.mem_mb}M"} or s.get("TimeLimit") != _hhmmss(r.minutes):
            problems.append(f"{task.key}: asked for {r.sbatch_options()}, got {seen} and TimeLimit={s.get('TimeLimit')}")
        exprs = iter(task.expressions)
        for out in procs[task.process].outputs:
            found = []
            for _ in out.patterns:
                pattern = next(exprs)
                matches = sorted(task.workdir.glob(pattern))
                if not matches and not out.optional:
                    problems.append(f"{task.key}: declared output {pattern!r} (emit {out.emit}) missing")
                found += matches
            task.outputs[out.emit] = found
        for path in (p for ps in task.outputs.values() for p in ps if p.suffix == ".h5ad"):
            try:
                adata = ad.read_h5ad(path)
                if adata.n_obs == 0 or adata.n_vars == 0:
                    problems.append(f"{task.key}: {path.name} is empty ({adata.shape})")
            except Exception as err:  # noqa: BLE001
                problems.append(f"{task.key}: {path.name} does not open: {err}")
    report = tasks.get("MULTIQC")
    if report is not None and report.outputs.get("report"):
        mqc = [p for p in report.workdir.glob("[0-9]*/*")]
        try:
            contract._check_report(report.outputs["report"][0], mqc)
        except AssertionError as err:
            problems.append(f"MULTIQC: {err}")
        imputed = tasks["CAUSALGED_IMPUTE"].outputs.get("h5ad")
        if imputed:
            adata = ad.read_h5ad(imputed[0])
            if not adata.var["expected_pcc"].notna().all():
                problems.append("CAUSALGED_IMPUTE: the evaluation's trust table did not reach every imputed gene")
    return problems


def _elapsed(state: dict) -> str:
    return state.get("RunTime", "?")


def summary(tasks, resources, cluster: Cluster, problems, wall: float) -> str:
    lines = [
        "| task | job | label | config (attempt 1) | sbatch | after | state | exit | run time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tasks.values():
        r = resources[t.process]
        config = f"{r.cpus} cpus, {r.memory}, {r.time}"
        notes = [f"{d} {a} capped to {b} by resourceLimits" for d, (a, b) in r.limited.items()]
        notes += [f"{d} {a} scaled to the node's {b}" for d, (a, b) in r.scaled.items()]
        after = ", ".join(tasks[k].job_id for k in t.after) or "-"
        lines.append(f"| {t.key} | {t.job_id} | {r.label} | {config}{' (' + '; '.join(notes) + ')' if notes else ''} | "
                     f"`{' '.join(r.sbatch_options())}` | {after} | {t.state.get('JobState')} | {t.state.get('ExitCode')} | {_elapsed(t.state)} |")
    scaled = any(r.scaled for r in resources.values())
    lines += [
        "",
        f"Node: {cluster.node}, {cluster.cpus} CPUs, {cluster.mem_mb} MB (slurm {cluster.run('sinfo', '-V').strip()}). "
        + ("Some requests were larger than the node and were scaled down (see the table)." if scaled
           else "No request was larger than the node: nothing was scaled down."),
        f"Wall time (rendering, cluster start, jobs, shutdown, checks): {wall:.0f} s. Outputs: "
        + ("every job COMPLETED with exit 0 and was given the cpus, memory and time it asked for, every declared output exists, every h5ad opens, the MultiQC report has every section."
           if not problems else f"{len(problems)} problem(s):\n\n" + "\n".join(f"- {p}" for p in problems)),
        "",
        "This is not a Nextflow run: the scripts were rendered and submitted by tests/slurm/run_chain.py.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="folder for the cluster and the task folders (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the folder afterwards")
    ap.add_argument("--summary", type=Path, help="write the markdown table of jobs and resources here")
    ap.add_argument("--json", type=Path, help="write the jobs, resources and states as JSON here")
    ap.add_argument("--timeout", type=float, default=600, help="seconds the chain may take once submitted")
    args = ap.parse_args(argv)

    if missing := slurm_missing():
        print(f"slurm is not installed (missing {', '.join(missing)}): apt-get install slurm-wlm", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("the loopback cluster is started as root (SlurmUser=root)", file=sys.stderr)
        return 2

    # SIGTERM (a CI timeout) unwinds through the finally blocks below, so the daemons are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    root = args.workdir or Path(tempfile.mkdtemp(prefix="causalged-slurm-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.time()
    procs = {p.name: p for p in nfsource.processes()}
    assert set(procs) == set(contract.WIRING), "a process was added or renamed: update WIRING in tests/test_nextflow_contract.py"
    cluster = Cluster(root / "cluster")
    renderer = nfsource.Renderer()
    try:
        (root / "cluster").mkdir(exist_ok=True)
        resources = render_resources(renderer, procs, cluster.cpus, cluster.mem_mb)
        n_folds = int(renderer.render(contract._render_request(procs, []))["params"]["n_folds"])
        tasks = plan(procs, renderer, root, n_folds)
        renderer.close()
        renderer = None
        cluster.start()
        try:
            submit(cluster, tasks, resources, procs)
            wait(cluster, tasks, args.timeout)
        finally:
            if tasks and any(t.job_id for t in tasks.values()):
                for t in tasks.values():
                    if t.job_id and not t.state:
                        try:
                            t.state = cluster.job(t.job_id)
                        except RuntimeError:
                            pass
            cluster.stop()
        problems = check_outputs(tasks, procs, resources)
        wall = time.time() - started
        text = summary(tasks, resources, cluster, problems, wall)
        print(text)
        if args.summary:
            args.summary.write_text(text)
        if args.json:
            args.json.write_text(json.dumps({
                "wall_s": round(wall, 1), "problems": problems, "node": {"cpus": cluster.cpus, "mem_mb": cluster.mem_mb},
                "tasks": {k: {"job": t.job_id, "process": t.process, "after": t.after, "state": t.state.get("JobState"),
                              "exit": t.state.get("ExitCode"), "run_time": t.state.get("RunTime"),
                              "sbatch": resources[t.process].sbatch_options(), "label": resources[t.process].label,
                              "config": {"cpus": resources[t.process].cpus, "memory": resources[t.process].memory, "time": resources[t.process].time},
                              "limited": resources[t.process].limited, "scaled": resources[t.process].scaled}
                          for k, t in tasks.items()},
            }, indent=2))
        return 0 if not problems else 1
    finally:
        if renderer is not None:
            renderer.close()
        cluster.stop() if cluster.procs and any(p.poll() is None for p in cluster.procs.values()) else None
        if not args.keep and not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root}")


if __name__ == "__main__":
    sys.exit(main())
