"""The contract between the Nextflow modules and the CLI, checked without Nextflow.

For every process, its ``script:`` section is rendered by Groovy exactly as Nextflow would render
it (params from nextflow.config + the test profile, ext.args from conf/modules.config, inputs named
as the upstream outputs they are wired to), then:

* the command line must be accepted by the Click command it calls (``make_context``);
* run in a task directory on the committed tiny data, in workflow order, it must create every
  file its ``output:`` block declares, and the MultiQC step must render every section;
* the ``stub:`` section must create every declared output and nothing needs Python for it.

A module calling a command the CLI does not have fails; a step whose upstream step failed is
skipped with that reason.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nf import nfsource

REPO = nfsource.REPO
META = {"id": "tiny", "platform": "simulated"}
SAMPLE = {"sc": REPO / "tests/data/tiny_sc.h5ad", "st": REPO / "tests/data/tiny_st.h5ad", "genes": REPO / "tests/data/tiny_genes.txt"}
MULTIQC_CONFIG = REPO / "assets/multiqc_config.yml"
# process.shell in nextflow.config
TASK_SHELL = ["bash", "-C", "-e", "-u", "-o", "pipefail"]

# How the workflows wire each process input: (upstream process, emit name, index among the tuple's paths).
HVG = "CAUSALGED_SELECT_HVG"
WIRING = {
    "CAUSALGED_IMPORT": {"sc": "sample:sc", "st": "sample:st"},
    "CAUSALGED_QC": {"sc": ("CAUSALGED_IMPORT", "h5ad", 0), "st": ("CAUSALGED_IMPORT", "h5ad", 1)},
    "CAUSALGED_NORMALIZE": {"sc": ("CAUSALGED_QC", "h5ad", 0), "st": ("CAUSALGED_QC", "h5ad", 1)},
    "CAUSALGED_CAUSALITY": {"sc": ("CAUSALGED_NORMALIZE", "h5ad", 0), "st": ("CAUSALGED_NORMALIZE", "h5ad", 1)},
    "CAUSALGED_ABLATE": {"sc": "sample:sc", "st": "sample:st"},
    HVG: {"sc": ("CAUSALGED_NORMALIZE", "h5ad", 0), "st": ("CAUSALGED_NORMALIZE", "h5ad", 1), "genes": "sample:genes"},
    "CAUSALGED_CROSSVALIDATE": {"sc": (HVG, "h5ad", 0), "st": (HVG, "h5ad", 1), "split": (HVG, "split", 0)},
    "CAUSALGED_EVALUATE": {"sc": (HVG, "h5ad", 0), "st": (HVG, "h5ad", 1), "split": (HVG, "split", 0),
                           "predictions": ("CAUSALGED_CROSSVALIDATE", "predictions", 0)},
    "CAUSALGED_TRAIN": {"sc": (HVG, "h5ad", 0), "st": (HVG, "h5ad", 1), "split": (HVG, "split", 0)},
    "CAUSALGED_IMPUTE": {"model": ("CAUSALGED_TRAIN", "model", 0), "sc": (HVG, "h5ad", 0), "st": (HVG, "h5ad", 1),
                         "trust": ("CAUSALGED_EVALUATE", "trust", 0)},
    "MULTIQC": {"multiqc_files": "mqc", "multiqc_config": "config"},
}
#: The ext directives of conf/modules.config that the tests render.
EXT = ("args", "step", "prefix", "use_gpu", "allow_failure")
ORDER = list(WIRING)


# ----------------------------------------------------------------------------- rendering


@pytest.fixture(scope="module")
def renderer():
    """One JVM for the module (skips, or fails under CAUSALGED_REQUIRE_NF_LANG, without the jar)."""
    r = nfsource.Renderer()
    yield r
    r.close()


@pytest.fixture(scope="module")
def procs() -> dict[str, nfsource.Process]:
    found = {p.name: p for p in nfsource.processes()}
    assert set(found) == set(WIRING), "a process was added or renamed: update WIRING in this test"
    return found


def _render_request(procs, tasks) -> dict:
    ext = {}
    for config in ("conf/modules.config", "conf/ext_args.config"):  # in nextflow.config's include order
        for name, body in nfsource.with_name_blocks((REPO / config).read_text()).items():
            ext.setdefault(name, {}).update({d: src for d in EXT if (src := nfsource.closure_assignment(body, f"ext.{d}"))})
    return {
        "project_dir": str(REPO),
        "manifest_version": re.search(r"version\s*=\s*'([^']+)'", nfsource.scope_block((REPO / "nextflow.config").read_text(), "manifest")).group(1),
        "params_blocks": [nfsource.scope_block((REPO / f).read_text(), "params") for f in ("nextflow.config", "conf/test.config")],
        "ext": ext,
        "tasks": tasks,
    }


def _task(proc: nfsource.Process, key: str, section: str, bindings: dict) -> dict:
    return {
        "key": key, "process": f"CAUSALGED:{proc.name}", "ext_of": proc.name, "section": proc.sections[section],
        "bindings": bindings, "expressions": [pat for out in proc.outputs for pat in out.patterns],
    }


def _placeholder_bindings(proc: nfsource.Process, meta: dict) -> dict:
    """Input names for checks that do not need real upstream files."""
    bindings = {"meta": meta}
    for name in proc.input_names:
        if name == "meta":
            continue
        bindings[name] = [f"{name}_{i}.h5ad" for i in range(2)] if name in ("predictions", "multiqc_files") else f"{name}.input"
    return bindings


@pytest.fixture(scope="module")
def placeholder_render(procs, renderer) -> dict:
    """Script and stub of every process rendered with placeholder inputs."""
    meta = {**META, "fold": 0, "n_folds": 2}
    tasks = [_task(p, f"{p.name}:{section}", section, _placeholder_bindings(p, meta)) for p in procs.values() for section in ("script", "stub")]
    return renderer.render(_render_request(procs, tasks))


def command_tokens(script: str) -> list[str]:
    """The step's command in a rendered script (the first causalged-* line, continuations joined), as argv."""
    joined = re.sub(r"\\\n", " ", script)
    for line in joined.splitlines():
        if line.strip().startswith("causalged-"):
            return shlex.split(line)
    raise AssertionError(f"no causalged-* command in the script:\n{script}")


def cli_command(tokens: list[str]):
    """The Click command behind ``causalged-<step>``, or skip while it has not landed."""
    from causalged.cli import cli

    step = tokens[0].removeprefix("causalged-")
    command = cli.commands.get(step)
    if command is None:
        pytest.fail(f"`causalged {step}`, called by a module, is not a command of causalged.cli")
    return step, command


# ----------------------------------------------------------------------------- command lines


@pytest.mark.parametrize("name", [n for n in ORDER if n != "MULTIQC"])
def test_command_line_is_accepted_by_the_cli(name, procs, placeholder_render, tmp_path, monkeypatch):
    """The rendered command parses: every option exists and every value has the right type."""
    import click

    tokens = command_tokens(placeholder_render["tasks"][f"{name}:script"]["text"])
    assert tokens[0] in procs[name].commands
    assert (REPO / "bin" / tokens[0]).is_file(), f"{name} calls {tokens[0]} but bin/{tokens[0]} is missing"
    step, command = cli_command(tokens)
    monkeypatch.chdir(tmp_path)  # inputs exist, as they would in a task directory
    _create_inputs(command, tokens[1:])
    try:
        command.make_context(f"causalged-{step}", tokens[1:])
    except click.UsageError as err:
        pytest.fail(f"{name}: `{' '.join(tokens)}` rejected by `causalged {step}`: {err.format_message()}")


def _create_inputs(command, args: list[str]):
    """Create the placeholder files/folders that Path(exists=True) parameters will look for."""
    import click

    by_flag = {flag: p for p in command.params for flag in getattr(p, "opts", [])}
    positional = [p for p in command.params if isinstance(p, click.Argument)]
    pending = None
    for token in args:
        if token in by_flag:
            pending = by_flag[token] if not getattr(by_flag[token], "is_flag", False) else None
            continue
        param = pending or (positional[0] if positional and not token.startswith("-") else None)
        pending = None
        if param is not None and isinstance(param.type, click.Path) and param.type.exists:
            if param.type.file_okay:
                Path(token).touch()
            else:
                Path(token).mkdir(exist_ok=True)


@pytest.mark.parametrize("name", ["CAUSALGED_IMPUTE", "CAUSALGED_CROSSVALIDATE"])
@pytest.mark.parametrize("block, expected", [
    ("", {"sampler": "ddim", "sampling_steps": 50, "inference_mode": None, "device": "cpu", "n_samples": 2, "seed": 0}),
    ("sampler = 'ddpm'\nsampling_steps = 20\ninference_mode = 'autoregressive'\ndevice = 'cuda'\nn_samples = 5\nseed = 3",
     {"sampler": "ddpm", "sampling_steps": 20, "inference_mode": "autoregressive", "device": "cuda", "n_samples": 5, "seed": 3}),
], ids=["test-profile", "given"])
def test_inference_params_reach_the_command(name, block, expected, procs, renderer, tmp_path, monkeypatch):
    """Every inference option impute and crossval take (device, samples, seed, sampler, steps, mode) arrives as the CLI reads it."""
    proc = procs[name]
    request = _render_request(procs, [_task(proc, name, "script", _placeholder_bindings(proc, {**META, "fold": 0, "n_folds": 2}))])
    request["params_blocks"].append(block)
    tokens = command_tokens(renderer.render(request)["tasks"][name]["text"])
    step, command = cli_command(tokens)
    monkeypatch.chdir(tmp_path)
    _create_inputs(command, tokens[1:])
    given = command.make_context(f"causalged-{step}", tokens[1:]).params
    assert {k: given[k] for k in expected} == expected


def test_every_inference_option_of_the_cli_is_passed():
    """The options of `causalged impute` / `crossval` that the pipeline does not set are only the task's own files."""
    from causalged.cli import cli

    crossval, impute = cli.commands["crossval"], cli.commands["impute"]
    config = (REPO / "conf/ext_args.config").read_text()
    blocks = nfsource.with_name_blocks(config)
    module_args = {"sample", "sc", "st", "split", "outdir", "model", "trust", "fold", "platform"}  # set by the module script
    for name, command in (("CAUSALGED_IMPUTE", impute), ("CAUSALGED_CROSSVALIDATE", crossval)):
        for param in command.params:
            flag = param.opts[0]
            if param.name in module_args:
                continue
            assert f'"{flag} ' in blocks[name], f"{name}: {flag} of `causalged {command.name}` is never set by conf/ext_args.config"


def test_versions_are_recorded_by_every_script(placeholder_render, procs):
    for name in procs:
        text = placeholder_render["tasks"][f"{name}:script"]["text"]
        assert "versions.yml" in text, f"{name} script does not write versions.yml"


# ----------------------------------------------------------------------------- profiles


def _directives(renderer, procs, items) -> dict:
    return renderer.render({**_render_request(procs, []), "directives": items})["directives"]


@pytest.mark.parametrize(
    "partitions, accelerator, queue, options",
    [
        ({"slurm_partition": "cpu", "slurm_gpu_partition": "gpu", "slurm_account": "lab"}, {"request": 1}, "gpu", "--account=lab --gres=gpu:1"),
        ({"slurm_partition": "cpu", "slurm_gpu_partition": "gpu", "slurm_account": "lab"}, None, "cpu", "--account=lab"),
        ({"slurm_partition": "cpu"}, {"request": 2}, "cpu", "--gres=gpu:2"),
        ({}, None, None, ""),
        ({"slurm_account": "lab", "slurm_options": "--qos=long --constraint=avx2", "slurm_gpu_options": "--constraint=a100"}, {"request": 1}, None,
         "--account=lab --qos=long --constraint=avx2 --gres=gpu:1 --constraint=a100"),
        ({"slurm_options": "--qos=long", "slurm_gpu_options": "--constraint=a100"}, None, None, "--qos=long"),
    ],
    ids=["gpu-task", "cpu-task", "gpu-no-gpu-partition", "defaults", "extra-options-gpu", "extra-options-cpu"],
)
def test_slurm_routes_gpu_tasks(renderer, procs, partitions, accelerator, queue, options):
    """-profile slurm,gpu: only tasks that got an accelerator go to the GPU partition with --gres."""
    process = nfsource.scope_block((REPO / "conf/slurm.config").read_text(), "process")
    scope = {"task": {"accelerator": accelerator}, "params": partitions}
    out = _directives(renderer, procs, [
        {"key": "queue", "source": nfsource.closure_assignment(process, "queue"), "scope": scope},
        {"key": "clusterOptions", "source": nfsource.closure_assignment(process, "clusterOptions"), "scope": scope},
    ])
    assert out["queue"] == queue and out["clusterOptions"] == options


def _gpu_block() -> str:
    return nfsource.label_block(nfsource.profile_block("gpu"), "process_gpu")


@pytest.mark.parametrize(
    "engine, options",
    [("docker", "--gpus all"), ("podman", "--device nvidia.com/gpu=all"), ("singularity", "--nv"), ("apptainer", "--nv"), (None, "")],
)
def test_gpu_profile_container_options(renderer, procs, engine, options):
    """A task that uses a GPU gets one accelerator, the CUDA image and its engine's GPU option; another gets none."""
    block = _gpu_block()
    items = []
    for use_gpu in (True, False):
        scope = {"workflow": {"containerEngine": engine, "manifest": {"version": "0.1.0"}}, "task": {"ext": {"use_gpu": use_gpu}}}
        items += [{"key": f"{d}:{use_gpu}", "source": nfsource.closure_assignment(block, d), "scope": scope} for d in ("containerOptions", "container", "accelerator")]
    out = _directives(renderer, procs, items)
    assert out == {
        "containerOptions:True": options, "container:True": "localhost/causalged:0.1.0-cuda", "accelerator:True": "1",
        "containerOptions:False": "", "container:False": "localhost/causalged:0.1.0", "accelerator:False": None,
    }


GPU_STEPS = ["CAUSALGED_TRAIN", "CAUSALGED_IMPUTE", "CAUSALGED_CROSSVALIDATE"]


@pytest.mark.parametrize(
    "params_block, gpu",
    [
        ("method = 'knn_ridge_blend'\neval_methods = 'knn,mean_map'", {"CAUSALGED_TRAIN": False, "CAUSALGED_IMPUTE": False, "CAUSALGED_CROSSVALIDATE": False}),
        ("method = 'knn_ridge_blend'", {"CAUSALGED_TRAIN": False, "CAUSALGED_IMPUTE": False, "CAUSALGED_CROSSVALIDATE": False}),  # the default (fast) set has no diffusion model
        ("method = 'knn_ridge_blend'\neval_methods = 'full'", {"CAUSALGED_TRAIN": False, "CAUSALGED_IMPUTE": False, "CAUSALGED_CROSSVALIDATE": True}),  # full has causalged
        ("method = 'causalged'\neval_methods = 'knn'", {"CAUSALGED_TRAIN": True, "CAUSALGED_IMPUTE": True, "CAUSALGED_CROSSVALIDATE": True}),
        ("method = 'causalged_ar'\neval_methods = 'knn'", {"CAUSALGED_TRAIN": True, "CAUSALGED_IMPUTE": True, "CAUSALGED_CROSSVALIDATE": True}),
        ("method = 'kernel_ridge'\neval_methods = 'causalged_plus'", {"CAUSALGED_TRAIN": False, "CAUSALGED_IMPUTE": False, "CAUSALGED_CROSSVALIDATE": True}),
    ],
    ids=["cpu-method", "cpu-method-default-eval", "cpu-method-full-eval", "causalged", "causalged_ar", "cpu-method-model-eval"],
)
def test_gpu_only_for_tasks_whose_method_needs_one(renderer, procs, params_block, gpu):
    """-profile gpu: the accelerator (and so the Slurm GPU partition and --gres) follows the methods each task runs."""
    request = _render_request(procs, [])
    request["params_blocks"] = request["params_blocks"][:1] + [params_block]  # nextflow.config defaults + the case
    ext = renderer.render(request)["ext"]
    accelerator = nfsource.closure_assignment(_gpu_block(), "accelerator")
    slurm = nfsource.scope_block((REPO / "conf/slurm.config").read_text(), "process")
    items = []
    for name in GPU_STEPS:
        use_gpu = ext[name]["use_gpu"] == "true"
        assert use_gpu == gpu[name], f"{name}: ext.use_gpu {ext[name]['use_gpu']} with {params_block!r}"
        items.append({"key": name, "source": accelerator, "scope": {"task": {"ext": {"use_gpu": use_gpu}}}})
    out = _directives(renderer, procs, items)
    for name in GPU_STEPS:
        assert out[name] == ("1" if gpu[name] else None), name
        request = {"task": {"accelerator": {"request": 1} if out[name] else None}, "params": {"slurm_partition": "cpu", "slurm_gpu_partition": "gpu"}}
        routed = _directives(renderer, procs, [{"key": "q", "source": nfsource.closure_assignment(slurm, "queue"), "scope": request}])
        assert routed["q"] == ("gpu" if gpu[name] else "cpu")


def test_gpu_methods_are_the_diffusion_models():
    from causalged.methods import MODEL_METHODS

    params = nfsource.scope_block((REPO / "nextflow.config").read_text(), "params")
    assert re.search(r"gpu_methods\s*=\s*'([^']+)'", params).group(1).split(",") == list(MODEL_METHODS)


@pytest.mark.parametrize(
    "exit_status, attempt, allow, expected",
    [(75, 1, None, "retry"), (137, 1, None, "retry"), (75, 2, None, "finish"), (1, 1, None, "finish"), (1, 1, True, "ignore"), (75, 2, True, "ignore")],
    ids=["cuda-oom", "oom-kill", "cuda-oom-again", "error", "error-allowed", "cuda-oom-again-allowed"],
)
def test_error_strategy(renderer, procs, exit_status, attempt, allow, expected):
    """CUDA out-of-memory (exit 75) and resource kills are retried once; a failure is ignored only where ext.allow_failure."""
    from causalged.model.gpu import EXIT_CUDA_OOM

    assert EXIT_CUDA_OOM == 75
    base = nfsource.scope_block((REPO / "conf/base.config").read_text(), "process")
    scope = {"task": {"exitStatus": exit_status, "attempt": attempt, "maxRetries": 1, "ext": {"allow_failure": allow}}}
    out = _directives(renderer, procs, [{"key": "e", "source": nfsource.closure_assignment(base, "errorStrategy"), "scope": scope}])
    assert out["e"] == expected


@pytest.mark.parametrize("allowed", [False, True])
def test_allow_failed_folds_reaches_crossvalidate_only(renderer, procs, allowed):
    request = _render_request(procs, [])
    request["params_blocks"].append(f"allow_failed_folds = {str(allowed).lower()}")
    ext = renderer.render(request)["ext"]
    assert ext["CAUSALGED_CROSSVALIDATE"]["allow_failure"] == str(allowed).lower()
    assert all("allow_failure" not in directives for name, directives in ext.items() if name != "CAUSALGED_CROSSVALIDATE")


def test_model_steps_retry_with_half_the_batch(renderer, procs):
    """The model steps export CAUSALGED_BATCH_SCALE from the attempt: 1, then 0.5 on the retry after a CUDA OOM."""
    meta = {**META, "fold": 0, "n_folds": 2}
    for name in GPU_STEPS:
        proc = procs[name]
        texts = []
        for attempt in (1, 2):
            request = _render_request(procs, [_task(proc, name, "script", _placeholder_bindings(proc, meta))])
            request["tasks"][0]["attempt"] = attempt
            texts.append(renderer.render(request)["tasks"][name]["text"])
        scales = [float(re.search(r"export CAUSALGED_BATCH_SCALE=(\S+)", text).group(1)) for text in texts]
        assert scales == [1.0, 0.5], name


# ----------------------------------------------------------------------------- stubs


@pytest.mark.parametrize("name", ORDER)
def test_stub_creates_every_declared_output(name, procs, placeholder_render, tmp_path):
    rendered = placeholder_render["tasks"][f"{name}:stub"]
    tool = re.search(r"(^\s*|\$\(|\|\s*)(python3?|causalged[\w-]*|multiqc|nvidia-smi)\b", rendered["text"], re.M)
    assert not tool, f"{name} stub runs {tool.group(2)}: a stub may only create its declared outputs"
    subprocess.run([*TASK_SHELL, "-c", rendered["text"]], cwd=tmp_path, check=True, timeout=60)
    for pattern in rendered["expressions"]:
        assert list(tmp_path.glob(pattern)), f"{name} stub does not create {pattern}"
    versions = yaml.safe_load((tmp_path / "versions.yml").read_text())
    assert list(versions) == [f"CAUSALGED:{name}"]


# ----------------------------------------------------------------------------- running the steps


class Chain:
    """Results of the steps run so far, in workflow order (the tests below share one chain)."""

    def __init__(self, root: Path):
        self.root = root
        self.outputs: dict[str, dict[str, list[list[Path]]]] = {}  # process -> emit -> one path list per task
        self.skipped: dict[str, str] = {}
        self.versions: list[str] = []


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Chain:
    return Chain(tmp_path_factory.mktemp("nf_contract"))


def _input_paths(name: str, chain: Chain, mqc_files: list[Path]) -> dict[str, list[Path]]:
    """Real input files of a process, from the sample or from upstream outputs."""
    paths = {}
    for var, source in WIRING[name].items():
        if source == "mqc":
            paths[var] = mqc_files
        elif source == "config":
            paths[var] = [MULTIQC_CONFIG]
        elif isinstance(source, str):
            paths[var] = [SAMPLE[source.split(":")[1]]]
        else:
            upstream, emit, index = source
            if upstream in chain.skipped or upstream not in chain.outputs:
                pytest.skip(f"needs {upstream}, which did not run: {chain.skipped.get(upstream, 'not run')}")
            paths[var] = [task_paths[index] for task_paths in chain.outputs[upstream][emit]]
    return paths


def _run_task(proc, key: str, meta: dict, inputs: dict[str, list[Path]], chain: Chain, procs, renderer) -> dict[str, list[Path]]:
    """Stage inputs as Nextflow does (symlinks named as the files), render, run, collect outputs."""
    workdir = chain.root / key
    workdir.mkdir()
    bindings = {"meta": meta}
    for var, files in inputs.items():
        staged = []
        for i, src in enumerate(files):
            # MULTIQC stages with stageAs: '?/*' (one numbered folder per file, names may repeat)
            name = f"{i + 1}/{src.name}" if var == "multiqc_files" else src.name
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / name).symlink_to(src)
            staged.append(name)
        bindings[var] = staged if var in ("predictions", "multiqc_files") else staged[0]
    rendered = renderer.render(_render_request(procs, [_task(proc, key, "script", bindings)]))["tasks"][key]
    (workdir / ".command.sh").write_text(rendered["text"])
    env = {**os.environ, "PATH": f"{REPO / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run([*TASK_SHELL, ".command.sh"], cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{key} failed (exit {result.returncode}):\n{rendered['text']}\n{result.stderr[-4000:]}"

    outputs, expressions = {}, iter(rendered["expressions"])
    for out in proc.outputs:
        found = []
        for _pattern in out.patterns:
            pattern = next(expressions)
            matches = sorted(workdir.glob(pattern))
            assert matches or out.optional, f"{key}: declared output {pattern!r} (emit {out.emit}) was not created"
            found += matches
        outputs[out.emit] = found
    chain.versions.append((workdir / "versions.yml").read_text().strip())
    return outputs


def _record(chain: Chain, name: str, task_outputs: list[dict[str, list[Path]]]):
    chain.outputs[name] = {emit: [t[emit] for t in task_outputs] for emit in task_outputs[0]}


@pytest.mark.parametrize("name", ORDER)
def test_step_runs_and_creates_its_outputs(name, procs, chain, renderer):
    proc = procs[name]
    if name != "MULTIQC":
        try:
            cli_command([proc.commands[0]])
        except pytest.skip.Exception as skip:
            chain.skipped[name] = str(skip)
            raise

    mqc_files = []
    if name == "MULTIQC":
        mqc_files = [p for step in chain.outputs.values() for emit, tasks in step.items() if emit in ("mqc", "figures") for t in tasks for p in t]
        versions = chain.root / "causalged_software_mqc_versions.yml"  # what the workflow collects
        versions.write_text("\n".join(dict.fromkeys(chain.versions)) + "\n")
        mqc_files.append(versions)
    try:
        inputs = _input_paths(name, chain, mqc_files)
    except pytest.skip.Exception as skip:
        chain.skipped[name] = str(skip)
        raise

    if name == "CAUSALGED_CROSSVALIDATE":  # one task per fold, as the evaluation subworkflow fans out
        split = chain.outputs[HVG]["split"][0][0]
        n_folds = json.loads(split.read_text())["n_folds"]
        tasks = [_run_task(proc, f"{name}_{k}", {**META, "fold": k, "n_folds": n_folds}, inputs, chain, procs, renderer) for k in range(n_folds)]
    else:
        key = name if name != "MULTIQC" else "MULTIQC_run"
        tasks = [_run_task(proc, key, dict(META) if name != "MULTIQC" else {"id": "causalged"}, inputs, chain, procs, renderer)]
    _record(chain, name, tasks)

    if name == "CAUSALGED_IMPUTE":  # the evaluation's trust table reached the imputed genes
        import anndata as ad

        imputed = ad.read_h5ad(chain.outputs["CAUSALGED_IMPUTE"]["h5ad"][0][0])
        assert imputed.n_vars > 0 and imputed.var["expected_pcc"].notna().all()
    if name == "MULTIQC":
        _check_report(chain.outputs["MULTIQC"]["report"][0][0], mqc_files)


def _check_report(report: Path, mqc_files: list[Path]):
    """Every custom-content section that the steps wrote is in the report, and the versions too."""
    html = report.read_text(errors="replace")
    for f in mqc_files:
        if f.name.endswith("_mqc.tsv") and "# plot_type: 'generalstats'" in f.read_text():
            section = "general_stats"  # merged into MultiQC's general statistics
        elif f.name.endswith("_mqc.tsv"):
            section = re.search(r"^# id: '?([^'\n]+)'?$", f.read_text(), re.M).group(1)
        elif f.name.endswith("_mqc.html"):
            section = re.search(r"^id: '?([^'\n]+)'?$", f.read_text(), re.M).group(1)
        elif f.name.endswith("_mqc.json"):
            section = json.loads(f.read_text())["id"]
        else:
            continue
        assert f'id="{section}"' in html or f"id='{section}'" in html, f"section {section} (from {f.name}) missing in the report"
    assert "Software Versions" in html or "software_versions" in html
    for process in ["CAUSALGED_QC", "CAUSALGED_TRAIN", "CAUSALGED_IMPUTE", "CAUSALGED_EVALUATE", "MULTIQC"]:
        assert process in html, f"the versions of {process} are not in the report"


# ----------------------------------------------------------------------------- inputs as people have them


@pytest.mark.parametrize("st_layout, sc_layout", [("xenium", "cellxgene"), ("visium", "10x_mtx"), ("visium_hd", "10x_h5"), ("merscope", "loom"),
                                                  ("cosmx", "cellxgene"), ("spatialdata", "10x_h5")])
def test_import_module_stages_instrument_folders(st_layout, sc_layout, procs, renderer, tmp_path):
    """CAUSALGED_IMPORT takes folders as Nextflow stages them (a link named as the folder) and writes the internal pair."""
    import warnings

    import anndata as ad
    import numpy as np

    from fixtures.instrument_folders import load_tiny, vendor_ids, write_layout

    st, sc = load_tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = {"sc": [write_layout(sc_layout, tmp_path / "inputs", st, sc)], "st": [write_layout(st_layout, tmp_path / "inputs", st, sc)]}
    chain = Chain(tmp_path / "work")
    chain.root.mkdir()
    outputs = _run_task(procs["CAUSALGED_IMPORT"], "CAUSALGED_IMPORT", dict(META), inputs, chain, procs, renderer)
    sc_out, st_out = (ad.read_h5ad(p) for p in outputs["h5ad"])
    rows = st_out[vendor_ids(st_layout, st), list(st.var_names)]
    np.testing.assert_array_equal(np.asarray(rows.X.todense() if hasattr(rows.X, "todense") else rows.X), st.X.toarray() if hasattr(st.X, "toarray") else st.X)
    assert set(st.var_names) <= set(sc_out.var_names)  # the reference's genes named as the panel names them
    assert json.loads(outputs["json"][0].read_text())["st"]["layout"] == st_layout
