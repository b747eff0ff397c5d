"""Structure of the Nextflow pipeline, checked without Nextflow or Java.

nf-core conventions the pipeline promises (issue 4): includes resolve, every process has one
defined resource label, a meta tag, meta-tuple inputs, named emits, ext.args, a stub and a versions
record; the profiles exist and GPU settings are scoped to the GPU label; parameters and the schema
agree; the bin/ scripts the modules call exist and are executable.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from nf import nfsource

REPO = nfsource.REPO
PROCESSES = nfsource.processes()
PROFILES = {"docker", "singularity", "apptainer", "podman", "conda", "test", "gpu", "slurm"}


def _text(rel: str) -> str:
    return (REPO / rel).read_text()


def _ids(procs):
    return [p.name for p in procs]


def test_modules_exist_for_every_step():
    steps = {p.parent.name for p in (REPO / "modules/local").glob("*/main.nf")}
    assert steps >= {"qc", "normalize", "hvg", "train", "impute", "crossval", "evaluate", "multiqc"}
    assert len(PROCESSES) == len(steps), "one process per module"


# ----------------------------------------------------------------------------- includes


INCLUDE_RE = re.compile(r"^include\s*\{([^}]*)\}\s*from\s*['\"]([^'\"]+)['\"]", re.M)


def _defined_names(path: Path) -> set[str]:
    text = path.read_text()
    return set(re.findall(r"^(?:process|workflow)\s+(\w+)", text, re.M)) | set(re.findall(r"^def\s+(\w+)\s*\(", text, re.M))


@pytest.mark.parametrize("path", nfsource.nextflow_scripts(), ids=lambda p: str(p.relative_to(REPO)))
def test_includes_resolve(path):
    for names, source in INCLUDE_RE.findall(path.read_text()):
        if source.startswith("plugin/"):
            assert source == "plugin/nf-schema"
            continue
        base = (path.parent / source).resolve()
        target = base.with_suffix(".nf") if base.with_suffix(".nf").is_file() else base / "main.nf"
        assert target.is_file(), f"{path.name}: include source {source!r} resolves to neither {base}.nf nor {base}/main.nf"
        for name in re.split(r"[;\n]", names):
            name = name.strip().split(" as ")[0].strip()
            if name:
                assert name in _defined_names(target), f"{path.name}: {name} is not defined in {target.relative_to(REPO)}"


def test_every_process_is_used_by_a_workflow():
    wiring = "".join(p.read_text() for p in nfsource.nextflow_scripts() if "modules" not in p.parts)
    for proc in PROCESSES:
        assert re.search(rf"\b{proc.name}\s*\(", wiring), f"process {proc.name} is never called"


# ----------------------------------------------------------------------------- processes


def _base_labels() -> set[str]:
    return set(re.findall(r"withLabel\s*:\s*['\"](\w+)['\"]", _text("conf/base.config")))


def test_base_config_defines_the_standard_labels():
    assert _base_labels() >= {"process_single", "process_low", "process_medium", "process_high", "process_gpu"}


@pytest.mark.parametrize("proc", PROCESSES, ids=_ids(PROCESSES))
def test_process_conventions(proc):
    assert len(proc.labels) == 1, f"{proc.name}: exactly one resource label, got {proc.labels}"
    assert proc.labels[0] in _base_labels(), f"{proc.name}: label {proc.labels[0]} is not defined in conf/base.config"
    assert proc.tag and proc.tag.startswith("${meta.id}"), f"{proc.name}: tag must start with ${{meta.id}}"
    assert proc.input_lines and proc.input_lines[0].startswith("tuple val(meta), path("), f"{proc.name}: first input must be tuple val(meta), path(...)"
    for out in proc.outputs:
        assert out.emit, f"{proc.name}: output without emit: {out.line}"
    assert "task.ext.args" in proc.sections["script"], f"{proc.name}: script ignores task.ext.args"


@pytest.mark.parametrize("proc", PROCESSES, ids=_ids(PROCESSES))
def test_process_records_versions_and_has_a_stub(proc):
    assert 'path "versions.yml", emit: versions' in proc.sections.get("output", ""), f"{proc.name}: no versions output"
    assert "versions.yml" in proc.sections["script"], f"{proc.name}: script does not write versions.yml"
    assert "stub" in proc.sections, f"{proc.name}: no stub: block"
    assert "versions.yml" in proc.sections["stub"], f"{proc.name}: stub does not write versions.yml"


@pytest.mark.parametrize("proc", [p for p in PROCESSES if p.name != "MULTIQC"], ids=_ids(p for p in PROCESSES if p.name != "MULTIQC"))
def test_process_calls_an_executable_bin_script(proc):
    assert proc.commands, f"{proc.name}: calls no causalged-<step> script"
    for command in proc.commands:
        script = REPO / "bin" / command
        assert script.is_file(), f"{proc.name} calls {command}, but bin/{command} does not exist"
        assert os.access(script, os.X_OK), f"bin/{command} is not executable"
        assert script.read_text().startswith("#!/usr/bin/env python3"), f"bin/{command} needs a python3 shebang"


def test_gpu_label_only_on_model_steps():
    gpu = sorted(p.name for p in PROCESSES if p.labels == ["process_gpu"])
    assert gpu == ["CROSSVALIDATE", "IMPUTE", "TRAIN"]


# ----------------------------------------------------------------------------- configuration


def test_config_includes_exist():
    for rel in ["nextflow.config", *[str(p.relative_to(REPO)) for p in (REPO / "conf").glob("*.config")]]:
        for inc in re.findall(r"includeConfig\s+['\"]([^'\"]+)['\"]", _text(rel)):
            assert (REPO / inc).is_file(), f"{rel}: includeConfig {inc} does not exist"


def test_profiles_exist():
    names = set(nfsource.top_level_names(nfsource.scope_block(_text("nextflow.config"), "profiles")))
    assert names >= PROFILES, f"missing profiles: {PROFILES - names}"


def test_gpu_settings_are_scoped_to_the_gpu_label():
    """accelerator and --gpus/--nv only for withLabel:process_gpu, never global."""
    gpu = nfsource.profile_block("gpu")
    m = re.search(r"withLabel\s*:\s*['\"]process_gpu['\"]\s*\{", gpu)
    assert m, "gpu profile has no withLabel: 'process_gpu' block"
    inside = gpu[m.end() : nfsource.block_end(gpu, m.end() - 1) - 1]
    outside = gpu[: m.start()] + gpu[nfsource.block_end(gpu, m.end() - 1) :]
    assert "accelerator" in inside and "--gpus all" in inside and "--nv" in inside
    assert not re.search(r"accelerator|containerOptions|--gpus|--nv", outside), "GPU settings outside the process_gpu label"
    all_config = _text("nextflow.config").replace(gpu, "") + "".join(p.read_text() for p in (REPO / "conf").glob("*.config"))
    assert not re.search(r"--gpus|--nv\b|accelerator\s*=", all_config), "GPU options outside the gpu profile"


def test_slurm_profile_routes_gpu_tasks():
    slurm = _text("conf/slurm.config")
    assert re.search(r"executor\s*=\s*'slurm'", slurm)
    assert "--gres=gpu:${task.accelerator.request}" in slurm
    assert "params.slurm_gpu_partition" in slurm and "params.slurm_partition" in slurm and "params.slurm_account" in slurm
    assert re.search(r"queueSize\s*=", slurm) and re.search(r"submitRateLimit\s*=", slurm)
    # the closures are read per task, so the order of -profile slurm,gpu does not matter
    assert re.search(r"queue\s*=\s*\{", slurm) and re.search(r"clusterOptions\s*=\s*\{", slurm)


def test_retry_on_resource_exit_codes_and_resource_limits():
    base = _text("conf/base.config")
    assert "(130..145) + 104 + 175" in base and "'retry'" in base
    assert "resourceLimits" in base and "resourceLimits" in _text("conf/test.config")


def test_run_records_are_enabled():
    config = _text("nextflow.config")
    for scope in ("timeline", "report", "trace", "dag"):
        body = nfsource.scope_block(config, scope)
        assert "enabled = true" in body and "/pipeline_info/" in body, scope


def test_manifest_pins_the_nextflow_version_the_parser_checks():
    """tests/test_nextflow_lint.py uses the language server of the Nextflow 25.10 line."""
    manifest = nfsource.scope_block(_text("nextflow.config"), "manifest")
    assert re.search(r"nextflowVersion\s*=\s*'!>=25\.10\.0'", manifest)
    assert re.search(r"id\s+'nf-schema@\d+\.\d+\.\d+'", nfsource.scope_block(_text("nextflow.config"), "plugins"))


def test_every_process_is_published_per_sample_and_step():
    blocks = nfsource.with_name_blocks(_text("conf/modules.config"))
    for proc in PROCESSES:
        assert proc.name in blocks, f"conf/modules.config has no withName: '{proc.name}'"
        assert "ext.step" in blocks[proc.name] or "publishDir" in blocks[proc.name]
    assert "${params.outdir}/${meta.id}/${task.ext.step}" in _text("conf/modules.config")


# ----------------------------------------------------------------------------- parameters and schemas


def _config_params() -> dict[str, str]:
    body = nfsource.scope_block(_text("nextflow.config"), "params")
    return dict(re.findall(r"^\s*(\w+)\s*=\s*(.+?)\s*$", body, re.M))


def _schema_params() -> dict[str, dict]:
    schema = json.loads(_text("nextflow_schema.json"))
    return {k: v for group in schema["$defs"].values() for k, v in group["properties"].items()}


def test_schema_is_valid_json_schema():
    import jsonschema

    schema = json.loads(_text("nextflow_schema.json"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {ref["$ref"].split("/")[-1] for ref in schema["allOf"]} == set(schema["$defs"])


def test_every_parameter_is_in_the_schema_and_back():
    config, schema = set(_config_params()), set(_schema_params())
    assert config - schema == set(), f"params missing from nextflow_schema.json: {config - schema}"
    assert schema - config == set(), f"schema params missing from nextflow.config: {schema - config}"


def test_schema_defaults_match_the_config():
    schema = _schema_params()
    for name, raw in _config_params().items():
        if raw == "null" or raw.startswith("new "):
            assert "default" not in schema[name], f"{name}: no default in config but {schema[name]['default']!r} in schema"
            continue
        value = yaml.safe_load(raw.replace("'", '"'))
        assert schema[name].get("default") == value, f"{name}: config {value!r} vs schema {schema[name].get('default')!r}"


def test_schema_defaults_are_valid_values():
    import jsonschema

    for name, prop in _schema_params().items():
        if "default" in prop:
            jsonschema.validate(prop["default"], {k: v for k, v in prop.items() if k not in ("default", "format", "exists")})


def test_method_choices_match_the_cli():
    from causalged.methods import METHODS

    assert set(_schema_params()["method"]["enum"]) == set(METHODS)


def test_sampling_params_match_the_cli():
    """The diffusion sampling params offer what `causalged impute` and `crossval` accept."""
    from causalged.evaluation.cli import crossval
    from causalged.model.cli import impute

    schema = _schema_params()
    for command in (impute, crossval):
        options = {p.name: p for p in command.params}
        assert set(schema["sampler"]["enum"]) == set(options["sampler"].type.choices)
        assert set(schema["inference_mode"]["enum"]) == set(options["mode"].type.choices)
    assert schema["sampling_steps"]["type"] == "integer" and schema["sampling_steps"]["minimum"] == 0


@pytest.mark.parametrize("sheet", ["assets/samplesheet.csv", "tests/data/samplesheet_test.csv"])
def test_samplesheets_match_the_input_schema(sheet):
    schema = json.loads(_text("assets/schema_input.json"))
    with open(REPO / sheet, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    columns = set(rows[0])
    assert columns <= set(schema["items"]["properties"]), f"{sheet}: unknown columns {columns - set(schema['items']['properties'])}"
    assert set(schema["items"]["required"]) <= columns
    import jsonschema  # nf-schema's own keywords (exists, meta, file-path) are ignored here; patterns are not

    jsonschema.validate([{k: v for k, v in row.items() if v} for row in rows], schema)


def test_input_schema_rows_are_meta_then_files():
    """main.nf takes rows as [meta, sc, st, genes]: samplesheetToList returns the meta map, then the
    other columns in schema order, so every column that is not a file must go to the meta map."""
    props = json.loads(_text("assets/schema_input.json"))["items"]["properties"]
    meta = [k for k, v in props.items() if "meta" in v]
    files = [k for k, v in props.items() if v.get("format") == "file-path"]
    assert files == ["sc", "st", "genes"] and "sample" in meta
    other = [k for k in props if k not in files and k not in meta]
    assert not other, f'columns {other} need "meta": [...] in assets/schema_input.json (rows must be [meta, sc, st, genes])'


def test_test_profile_points_at_committed_data():
    config = _text("conf/test.config")
    sheet = re.search(r"input\s*=\s*\"\$\{projectDir\}/([^\"]+)\"", config).group(1)
    with open(REPO / sheet, newline="") as fh:
        for row in csv.DictReader(fh):
            for col in ("sc", "st", "genes"):
                if row.get(col):
                    assert (REPO / row[col]).is_file(), f"{sheet}: {row[col]} does not exist (paths are relative to the repository root)"


# ----------------------------------------------------------------------------- MultiQC


def _code_section_ids() -> set[str]:
    ids = set()
    for path in list((REPO / "causalged").rglob("*.py")) + [REPO / "main.nf"]:
        text = path.read_text()
        ids |= set(re.findall(r"section_id\s*=\s*f?[\"'](causalged_\w+)[\"']", text))
        ids |= set(re.findall(r"\bid\s*:\s*[\"'](causalged_\w+)[\"']", text))
    return ids


def _configured_section_ids() -> set[str]:
    config = yaml.safe_load(_text("assets/multiqc_config.yml"))
    return set(config["custom_content"]["order"]) | set(config.get("report_section_order", {}))


def test_multiqc_config_orders_every_section_the_code_writes():
    missing = _code_section_ids() - _configured_section_ids()
    assert not missing, f"sections written by the code but not ordered in assets/multiqc_config.yml: {missing}"


def test_multiqc_config_names_only_sections_that_exist():
    unknown = _configured_section_ids() - _code_section_ids()
    assert not unknown, f"ordered in assets/multiqc_config.yml but written by no code: {sorted(unknown)}"


# ----------------------------------------------------------------------------- documentation


@pytest.mark.parametrize("proc", PROCESSES, ids=_ids(PROCESSES))
def test_every_declared_output_is_documented(proc):
    doc = _text("docs/output.md")
    for out in proc.outputs:
        for pattern in out.patterns:
            if pattern == "versions.yml" or "*" in pattern:
                continue
            name = pattern.replace("${meta.id}", "<s>").replace("${meta.fold}", "<K>")
            assert name in doc, f"{proc.name} output {name} is not described in docs/output.md"


def test_every_parameter_is_documented():
    usage = _text("docs/usage.md")
    for name in _config_params():
        if _schema_params()[name].get("hidden"):
            continue
        assert f"--{name}" in usage, f"--{name} is not described in docs/usage.md"
