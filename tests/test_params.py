"""One definition for every parameter: the table in causalged/params.py against everything built from it.

* Route parity: each module's ``ext.args``, rendered by Groovy from nextflow.config (+ a profile),
  equals, flag by flag, the keyword values the single-machine route hands the same step
  (``causalged.pipeline.sample_tasks``), for the test profile and for a parameter set where every
  parameter differs from its default.
* nextflow.config's defaults, nextflow_schema.json's entries and conf/ext_args.config are the table's.
* Every step function takes exactly the table's keywords with the table's defaults, and the
  Nextflow modules declare the files the step's ``outputs()`` names.
"""

from __future__ import annotations

import copy
import inspect
import json
import re
import shlex
from pathlib import Path

import pytest

from causalged import params as spec
from nf import nfsource

REPO = nfsource.REPO
#: Options a module's script sets itself (its own files), not through ext.args.
MODULE_SET = {"outdir", "fold", "output", "mqc_dir", "platform"}
#: Keywords a step function takes beyond the table: progress bars (train) and the page's command record (ablate).
EXTRA_KEYWORDS = {"train": {"progress"}, "ablate": {"command"}}


@pytest.fixture(scope="module")
def renderer():
    r = nfsource.Renderer()
    yield r
    r.close()


def _ext_sources() -> dict[str, dict[str, str]]:
    ext: dict[str, dict[str, str]] = {}
    for config in ("conf/modules.config", "conf/ext_args.config"):  # nextflow.config's include order
        for name, body in nfsource.with_name_blocks((REPO / config).read_text()).items():
            ext.setdefault(name, {}).update({d: src for d in ("args",) if (src := nfsource.closure_assignment(body, f"ext.{d}"))})
    return ext


def _render(renderer, *extra_blocks: str, profile: str | None = "conf/test.config") -> dict:
    blocks = [nfsource.scope_block((REPO / "nextflow.config").read_text(), "params")]
    if profile:
        blocks.append(nfsource.scope_block((REPO / profile).read_text(), "params"))
    request = {"project_dir": str(REPO), "manifest_version": "0", "params_blocks": [*blocks, *extra_blocks], "ext": _ext_sources(), "tasks": []}
    return renderer.render(request)


def _literal(text: str):
    """A Groovy literal of a params block as Python (None for what is not a plain literal)."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if re.fullmatch(r"'[^'$]*'", text):
        return text[1:-1]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*", text):
        return float(text)
    return None


def _profile_values(path: str) -> dict:
    run_names = {p.name for p in spec.run_params()}
    given = spec.nextflow_defaults(nfsource.scope_block((REPO / path).read_text(), "params"))
    return {k: _literal(v) for k, v in given.items() if k in run_names and spec.BY_NAME[k].nf and _literal(v) is not None}


def _all_differ() -> dict:
    """A value for every pipeline parameter, each different from its default and valid."""
    special = {"method": "kernel_ridge", "eval_methods": "knn,mean_map", "causality_methods": "granger", "ablation_seeds": "3,4",
               "ablation_axes": "mask", "input": None, "top_fraction": 0.3, "bin_size": 16, "gene_symbols": "feature_name",
               "skip_evaluation": False}  # a workflow switch no step takes: kept so that every step runs
    values = {}
    for p in spec.run_params():
        if not p.nf or p.name == "input":
            continue
        if p.name in special:
            values[p.name] = special[p.name]
        elif p.type is bool:
            values[p.name] = not p.default
        elif isinstance(p.type, tuple):
            values[p.name] = next(c for c in p.type if c != p.default)
        elif p.type is int:
            values[p.name] = 3 if p.default is None else p.default + 1
        elif p.type is float:
            values[p.name] = 0.3 if p.default is None else p.default / 2
        else:
            raise AssertionError(f"give {p.name} a non-default value in this test")
        assert values[p.name] != p.default or p.name == "skip_evaluation", p.name
    return values


def _python_route(values: dict) -> dict[str, list[str]]:
    """Per process, the flags `causalged run` passes its step for the run's values (inputs and the module's own files left out)."""
    from causalged.pipeline import run_values, sample_tasks
    from causalged.samplesheet import Sample

    values = run_values(**values)
    sample = Sample(id="s", sc=Path("sc.h5ad"), st=Path("st.h5ad"), genes=Path("genes.txt"))
    tasks = sample_tasks(sample, Path("out"), values) + sample_tasks(sample, Path("out"), values, n_folds=2)
    argv = {}
    for task in tasks:
        kinds = {p.keyword: p.kind for p in spec.step_params(task.step)}
        options = {k: v for k, v in task.kwargs.items() if kinds.get(k) == spec.OPTION and k not in MODULE_SET}
        argv.setdefault(spec.PROCESSES[task.step], spec.to_argv(task.step, options))
    return argv


def _groovy_block(values: dict) -> str:
    return "\n".join(f"{k} = {spec.groovy_literal(v)}" for k, v in values.items())


@pytest.mark.parametrize("case", ["test profile", "every parameter differs"])
def test_both_routes_pass_each_step_the_same_flags(renderer, case):
    values = _profile_values("conf/test.config") if case == "test profile" else _all_differ()
    reply = _render(renderer, *([_groovy_block(values)] if case != "test profile" else []))
    python = _python_route(values)
    assert set(python) == set(spec.PROCESSES.values())
    for process, flags in python.items():
        nextflow = shlex.split(reply["ext"].get(process, {}).get("args") or "")
        assert nextflow == flags, f"{process} ({case}):\n  Nextflow: {nextflow}\n  causalged run: {flags}"


def test_nextflow_defaults_are_the_tables(renderer):
    rendered = _render(renderer, profile=None)["params"]
    for p in spec.pipeline_params():
        if p.name == "input":
            continue
        assert p.name in rendered, f"nextflow.config has no params.{p.name}"
        assert rendered[p.name] == p.default, f"params.{p.name}: nextflow.config {rendered[p.name]!r}, causalged/params.py {p.default!r}"


def test_schema_entries_are_the_tables():
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    assert spec.update_schema(copy.deepcopy(schema)) == schema, "nextflow_schema.json differs from causalged/params.py: run `python -m causalged.params --write`"
    properties = {name for group in schema["$defs"].values() for name in group.get("properties", {})}
    assert {p.name for p in spec.pipeline_params()} <= properties
    assert properties <= {p.name for p in spec.pipeline_params()} | set(spec.NEXTFLOW_ONLY) | {"outdir"}
    config = spec.nextflow_defaults(nfsource.scope_block((REPO / "nextflow.config").read_text(), "params"))
    assert set(spec.NEXTFLOW_ONLY) - {"input_basedir"} <= set(config) | {"input_basedir"}


def test_parameters_page_is_generated_from_the_table():
    assert (REPO / "docs" / "parameters.md").read_text() == spec.parameters_page(), \
        "docs/parameters.md differs from causalged/params.py: run `python -m causalged.params --write`"


def test_ext_args_config_is_generated_from_the_table():
    assert (REPO / "conf" / "ext_args.config").read_text() == spec.ext_args_config(), \
        "conf/ext_args.config differs from causalged/params.py: run `python -m causalged.params --write`"
    assert "includeConfig 'conf/ext_args.config'" in (REPO / "nextflow.config").read_text()
    for body in nfsource.with_name_blocks((REPO / "conf/modules.config").read_text()).values():
        assert "ext.args" not in body or "multiqc" in body.lower() or "--title" in body  # arguments live in one place


@pytest.mark.parametrize("step", [*spec.STEPS, "simulate", "validate_samplesheet"])
def test_step_functions_take_the_tables_keywords_and_defaults(step):
    from causalged.steps import step_module

    signature = inspect.signature(step_module(step).run)
    table = {p.keyword: p for p in spec.step_params(step)}
    assert set(signature.parameters) == set(table) | EXTRA_KEYWORDS.get(step, set()), step
    for key, p in table.items():
        default = signature.parameters[key].default
        if p.required_for(step) or p.kind == spec.ARGUMENT:
            continue
        expected = p.default_for(step)
        assert default == expected, f"{step}.run({key}=...) defaults to {default!r}, the table to {expected!r}"


def test_options_are_defined_once():
    """No Click option is written by hand in the package but the command group's own four."""
    hand_written = [(path.relative_to(REPO), line.strip()) for path in (REPO / "causalged").rglob("*.py")
                    for line in path.read_text().splitlines() if "click.option(" in line]
    assert len(hand_written) == 4 and {str(p) for p, _ in hand_written} == {"causalged/cli.py"}, hand_written
    flags = [(p.name, p.flag) for p in spec.PARAMS]
    by_step = {}
    for p in spec.PARAMS:
        for step in p.steps:
            assert (p.flag, p.keyword) not in by_step.get(step, set()), f"{step}: {p.flag} defined twice"
            by_step.setdefault(step, set()).add((p.flag, p.keyword))
    assert len({n for n, _ in flags}) == len(flags)


def test_naming_rule():
    """A Nextflow name is its keyword, or the optional step's prefix and its keyword; the flag is the keyword with dashes."""
    for p in spec.pipeline_params():
        assert p.name == p.keyword or p.name in (f"causality_{p.keyword}", f"ablation_{p.keyword}"), p.name
        assert p.flag == "--" + p.keyword.replace("_", "-")


def test_modules_declare_the_files_the_steps_name(renderer):
    """Each module's output patterns (rendered for sample `tiny`) are files its step's outputs() names."""
    from causalged.steps import step_module

    procs = {p.name: p for p in nfsource.processes()}
    tasks = []
    for step, process in spec.PROCESSES.items():
        proc = procs[process]
        bindings = {"meta": {"id": "tiny", "fold": 0, "n_folds": 2}, **{n: f"{n}.input" for n in proc.input_names if n != "meta"}}
        tasks.append({"key": step, "process": f"CAUSALGED:{process}", "ext_of": process, "section": proc.sections["script"],
                      "bindings": bindings, "expressions": [pat for out in proc.outputs for pat in out.patterns]})
    request = {"project_dir": str(REPO), "manifest_version": "0", "params_blocks": [nfsource.scope_block((REPO / "nextflow.config").read_text(), "params")],
               "ext": _ext_sources(), "tasks": tasks}
    reply = renderer.render(request)
    for step in spec.PROCESSES:
        module = step_module(step)
        named = module.outputs("tiny", ".", fold=0) if step == "crossval" else module.outputs("tiny", ".")
        names = {str(Path(p)) for p in named.values()}
        for pattern in reply["tasks"][step]["expressions"]:
            if pattern == "versions.yml":
                continue
            if any(c in pattern for c in "*?"):
                assert any(Path(n).match(pattern) for n in names) or step in ("evaluate", "causality", "ablate", "impute", "train"), (step, pattern)
            else:
                assert str(Path(pattern)) in names, f"{spec.PROCESSES[step]} declares {pattern}, which {step}.outputs() does not name"
