"""Structure of the Nextflow pipeline, checked without Nextflow or Java.

nf-core conventions the pipeline promises (issues 4 and 12): includes resolve, every process has
one defined resource label, a meta tag, meta-tuple inputs, named emits, ext.args, ext.prefix,
`when:`, conda and container directives, a stub and a versions record, and a meta.yml and
environment.yml that match it; the profiles exist and GPU settings are scoped to the GPU label;
parameters and the schema agree; the bin/ scripts the modules call exist and are executable.
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
#: The model steps may run a diffusion model, so they carry the GPU capability label beside their size.
GPU_CAPABLE = ["CAUSALGED_ABLATE", "CAUSALGED_CROSSVALIDATE", "CAUSALGED_IMPUTE", "CAUSALGED_TRAIN"]


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
    assert _base_labels() >= {"process_single", "process_low", "process_medium", "process_high", "process_model"}
    assert "process_gpu" not in _base_labels(), "process_gpu is a capability (the gpu profile), not a size"


@pytest.mark.parametrize("proc", PROCESSES, ids=_ids(PROCESSES))
def test_process_conventions(proc):
    sizes = [label for label in proc.labels if label != "process_gpu"]
    assert len(sizes) == 1, f"{proc.name}: exactly one resource label, got {proc.labels}"
    assert sizes[0] in _base_labels(), f"{proc.name}: label {sizes[0]} is not defined in conf/base.config"
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
    gpu = sorted(p.name for p in PROCESSES if "process_gpu" in p.labels)
    assert gpu == GPU_CAPABLE


def test_process_names_carry_the_pipeline_prefix():
    """nf-core names a module TOOL_SUBCOMMAND: causalged's steps are CAUSALGED_<STEP>; the MultiQC module keeps
    the nf-core/modules name, so that `nf-core modules install multiqc` can replace it."""
    for proc in PROCESSES:
        assert proc.name.startswith("CAUSALGED_") or proc.name == "MULTIQC", proc.name


@pytest.mark.parametrize("proc", PROCESSES, ids=_ids(PROCESSES))
def test_process_has_the_nf_core_module_form(proc):
    from causalged import __version__

    assert re.search(r'^\s*conda "\$\{moduleDir\}/environment\.yml"$', proc.directives, re.M), f"{proc.name}: no conda directive"
    container = re.search(r'^\s*container "([^"]+)"$', proc.directives, re.M)
    assert container, f"{proc.name}: no container directive"
    assert container.group(1) == "localhost/causalged:${workflow.manifest.version}", container.group(1)
    assert re.search(r"version\s*=\s*'([^']+)'", nfsource.scope_block(_text("nextflow.config"), "manifest")).group(1) == __version__
    assert proc.sections["when"].strip() == "task.ext.when == null || task.ext.when", f"{proc.name}: nf-core when: section"
    for section in ("script", "stub"):
        assert re.search(r"^\s*prefix = task\.ext\.prefix \?: ", proc.sections[section], re.M), f"{proc.name}: {section} ignores task.ext.prefix"
    for out in proc.outputs:
        for pattern in out.patterns:
            assert pattern == "versions.yml" or "${prefix}" in pattern, f"{proc.name}: output {pattern} is not named by the prefix"


def _meta_yml(proc) -> dict:
    path = proc.path.parent / "meta.yml"
    assert path.is_file(), f"{proc.name}: no meta.yml"
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("proc", PROCESSES, ids=_ids(PROCESSES))
def test_meta_yml_describes_the_process(proc):
    """meta.yml (nf-core form): the process name, its tools, every input in order and every emit with its files."""
    meta = _meta_yml(proc)
    assert meta["name"] == proc.name.lower()
    assert {k for tool in meta["tools"] for k in tool} >= ({"multiqc"} if proc.name == "MULTIQC" else {"causalged"})
    documented_inputs = [name for channel in meta["input"] for item in (channel if isinstance(channel, list) else [channel]) for name in item]
    assert documented_inputs == proc.input_names, f"{proc.name}: meta.yml inputs {documented_inputs} != process inputs {proc.input_names}"
    assert list(meta["output"]) == [out.emit for out in proc.outputs], f"{proc.name}: meta.yml emits differ from the process's"
    for out in proc.outputs:
        documented = [name for entry in meta["output"][out.emit] for item in (entry if isinstance(entry, list) else [entry]) for name in item]
        assert [n for n in documented if n != "meta"] == out.patterns, f"{proc.name}: meta.yml files of emit {out.emit}"
        for entry in meta["output"][out.emit]:
            for item in entry if isinstance(entry, list) else [entry]:
                for name, spec in item.items():
                    assert spec.get("description") and spec.get("type"), f"{proc.name}: {name} needs a type and a description"


@pytest.mark.parametrize("proc", PROCESSES, ids=_ids(PROCESSES))
def test_environment_yml_pins_what_the_images_pin(proc):
    env = yaml.safe_load((proc.path.parent / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    pins = dict(line.split("==") for line in (REPO / "containers/requirements.txt").read_text().splitlines() if "==" in line and not line.startswith("#"))
    deps = env["dependencies"]
    if proc.name == "MULTIQC":
        assert deps == [f"bioconda::multiqc={pins['multiqc']}"]
        return
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    base = proc.path.parent
    assert (base / pip[-1]).resolve() == REPO, "the last pip entry installs this repository"
    assert (base / pip[1].removeprefix("-r ")).resolve() == REPO / "containers/requirements.txt"
    torch = re.search(r"ARG TORCH_VERSION=(\S+)", _text("containers/Dockerfile")).group(1)
    assert pip[0] == f"torch=={torch}"
    assert all(re.fullmatch(r"[\w-]+::[\w.-]+=[\w.]+", d) for d in deps if isinstance(d, str)), "conda packages are pinned with their channel"


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
    assert "accelerator" in inside and "--gpus all" in inside and "--nv" in inside and "task.ext.use_gpu" in inside
    assert not re.search(r"accelerator|containerOptions|--gpus|--nv", outside), "GPU settings outside the process_gpu label"
    for engine in ("docker", "podman", "singularity", "apptainer"):
        assert re.search(rf"^\s*{engine}\.envWhitelist\s*=\s*'CUDA_VISIBLE_DEVICES'", outside, re.M), f"{engine}: CUDA_VISIBLE_DEVICES not passed in"
    all_config = _text("nextflow.config").replace(gpu, "") + "".join(p.read_text() for p in (REPO / "conf").glob("*.config"))
    assert not re.search(r"--gpus|--nv\b|accelerator\s*=", all_config), "GPU options outside the gpu profile"


def test_slurm_profile_routes_gpu_tasks():
    slurm = _text("conf/slurm.config")
    assert re.search(r"executor\s*=\s*'slurm'", slurm)
    assert "--gres=gpu:${task.accelerator.request}" in slurm
    for name in ("slurm_gpu_partition", "slurm_partition", "slurm_account", "slurm_options", "slurm_gpu_options"):
        assert f"params.{name}" in slurm, name
    assert re.search(r"queueSize\s*=", slurm) and re.search(r"submitRateLimit\s*=", slurm)
    # the closures are read per task, so the order of -profile slurm,gpu does not matter
    assert re.search(r"queue\s*=\s*\{", slurm) and re.search(r"clusterOptions\s*=\s*\{", slurm)


def test_retry_on_resource_exit_codes_and_resource_limits():
    base = _text("conf/base.config")
    from causalged.model.gpu import EXIT_CUDA_OOM

    assert f"(130..145) + 104 + 175 + {EXIT_CUDA_OOM}" in base and "'retry'" in base
    assert "task.attempt <= task.maxRetries" in base and "task.ext.allow_failure ? 'ignore' : 'finish'" in base
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


def test_custom_configs_load_as_nf_core_does_and_not_offline():
    config = _text("nextflow.config")
    assert "includeConfig params.custom_config_base && (!System.getenv('NXF_OFFLINE') || !params.custom_config_base.startsWith('http'))" in config
    assert '"${params.custom_config_base}/nfcore_custom.config"' in config


def test_nf_core_yml():
    conf = yaml.safe_load(_text(".nf-core.yml"))
    assert conf["repository_type"] == "pipeline"
    assert conf["template"]["name"] == "causalged" and conf["template"]["version"] == _pyproject_version()


def _pyproject_version() -> str:
    import tomllib

    return tomllib.loads(_text("pyproject.toml"))["project"]["version"]


def test_container_profiles_use_the_module_images_and_a_configurable_cache():
    config = _text("nextflow.config")
    assert "process.container" not in config, "the modules name their images; a profile must not replace them"
    for engine in ("singularity", "apptainer"):
        assert re.search(rf"^\s*{engine}\.cacheDir\s*=\s*params\.image_cachedir$", nfsource.profile_block(engine), re.M), engine
    assert "launchDir" not in config + _text("conf/test.config"), "nothing may depend on the launch directory"


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
        raw = re.sub(r"\$\{params\.(\w+)\}", lambda m: yaml.safe_load(_config_params()[m.group(1)].replace("'", '"')), raw)
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
    from causalged.cli import cli

    crossval, impute = cli.commands["crossval"], cli.commands["impute"]
    schema = _schema_params()
    for command in (impute, crossval):
        options = {p.name: p for p in command.params}
        assert set(schema["sampler"]["enum"]) == set(options["sampler"].type.choices)
        assert set(schema["inference_mode"]["enum"]) == set(options["inference_mode"].type.choices)
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
    files = [k for k, v in props.items() if v.get("format") in ("file-path", "path")]  # sc, st: a file or an instrument folder
    assert files == ["sc", "st", "genes"] and "sample" in meta
    other = [k for k in props if k not in files and k not in meta]
    assert not other, f'columns {other} need "meta": [...] in assets/schema_input.json (rows must be [meta, sc, st, genes])'


def test_test_profile_points_at_committed_data():
    """From any launch directory: the sheet is under projectDir and its relative paths resolve from there."""
    config = _text("conf/test.config")
    sheet = re.search(r"input\s*=\s*\"\$\{projectDir\}/([^\"]+)\"", config).group(1)
    assert re.search(r'input_basedir\s*=\s*"\$\{projectDir\}"', config)
    with open(REPO / sheet, newline="") as fh:
        for row in csv.DictReader(fh):
            for col in ("sc", "st", "genes"):
                if row.get(col):
                    assert (REPO / row[col]).is_file(), f"{sheet}: {row[col]} does not exist (paths are relative to the repository root)"


# ----------------------------------------------------------------------------- MultiQC


def _code_section_ids() -> set[str]:
    ids = set()
    for path in list((REPO / "causalged").rglob("*.py")) + nfsource.nextflow_scripts():
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
            name = pattern.replace("${prefix}", "multiqc_report" if proc.name == "MULTIQC" else "<s>").replace("${meta.fold}", "<K>")
            assert name in doc, f"{proc.name} output {name} is not described in docs/output.md"


def test_every_parameter_is_documented():
    usage = _text("docs/usage.md")
    for name in _config_params():
        if _schema_params()[name].get("hidden"):
            continue
        assert f"--{name}" in usage, f"--{name} is not described in docs/usage.md"
