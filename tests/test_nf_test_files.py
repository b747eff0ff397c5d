"""The nf-test files (nf-test.config, tests/default.nf.test, tests/modules/local/*/main.nf.test).

Nextflow and nf-test cannot run on our machines, so these tests have never been run here. What
is checked: every file parses (Groovy's compiler from the language-server jar; the nf-test
settings config with Nextflow's strict ConfigParser), every module has a stub test that names its
process and script, the outputs the assertions read exist, and the pipeline test covers the test
profile for real and as a stub.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from nf import nfsource

REPO = nfsource.REPO
PROCESSES = nfsource.processes()
NF_TESTS = sorted((REPO / "tests").rglob("*.nf.test"))


def _parse(files) -> tuple[int, str]:
    result = subprocess.run(nfsource.groovy_command("groovy_parse.groovy", *map(str, files)), capture_output=True, text=True, timeout=300)
    assert "SUMMARY" in result.stdout, result.stderr[-3000:]
    return result.returncode, result.stdout


def test_nf_test_files_parse():
    files = [*NF_TESTS, REPO / "nf-test.config"]
    assert len(NF_TESTS) == len(PROCESSES) + 1
    rc, out = _parse(files)
    assert rc == 0, out
    assert f"SUMMARY\t{len(files)} files\t0 errors" in out


def test_parser_catches_a_broken_test(tmp_path):
    broken = tmp_path / "broken.nf.test"
    broken.write_text('nextflow_process {\n    name "x"\n    test("y") {\n        then { assert process.success \n    }\n')
    rc, out = _parse([broken])
    assert rc == 1 and "ERROR" in out


def test_nf_test_nextflow_config_lints_clean():
    from test_nextflow_lint import lint

    errors, warnings, _out = lint([REPO / "tests/nextflow.config"])
    assert not errors and not warnings, errors + warnings


@pytest.mark.parametrize("proc", PROCESSES, ids=[p.name for p in PROCESSES])
def test_every_module_has_a_stub_test_of_its_own_process(proc):
    test = REPO / "tests/modules/local" / proc.path.parent.name / "main.nf.test"
    assert test.is_file(), f"{proc.name}: no {test.relative_to(REPO)}"
    text = test.read_text()
    assert re.search(rf'^\s*process "{proc.name}"$', text, re.M)
    script = re.search(r'^\s*script "([^"]+)"$', text, re.M).group(1)
    assert (test.parent / script).resolve() == proc.path, f"{test}: script {script} is not {proc.path}"
    assert 'options "-stub"' in text
    n_inputs = len([line for line in proc.input_lines])
    assert set(re.findall(r"input\[(\d+)\]", text)) == {str(i) for i in range(n_inputs)}, f"{proc.name}: one input[] per input channel"
    emits = {out.emit for out in proc.outputs}
    read = set(re.findall(r"process\.out\.(\w+)", text))
    assert read <= emits, f"{test.relative_to(REPO)} reads outputs the process does not emit: {read - emits}"
    assert "versions" in read
    for data in re.findall(r'\$\{projectDir\}/([^"]+)"', text):
        assert (REPO / data).is_file(), f"{test.relative_to(REPO)}: {data} does not exist"


def test_pipeline_test_runs_the_test_profile_real_and_stub():
    text = (REPO / "tests/default.nf.test").read_text()
    config = (REPO / "nf-test.config").read_text()
    assert re.search(r'^\s*profile "test"$', config, re.M) and 'configFile "tests/nextflow.config"' in config
    assert 'script "../main.nf"' in text
    tests = re.findall(r'^\s*test\("([^"]+)"\)', text, re.M)
    assert "-profile test" in tests and "-profile test -stub" in tests
    stub = text[text.index('test("-profile test -stub")'):]
    assert 'options "-stub"' in stub.split("test(")[1]
    for path in re.findall(r'path\("\$outputDir/([^"]+)"\)', text):
        step = path.split("/")[1] if path.startswith("tiny/") else None
        if step:
            steps = {re.search(r"ext\.step = '(\w+)'", body).group(1) for body in nfsource.with_name_blocks((REPO / "conf/modules.config").read_text()).values() if "ext.step" in body}
            assert step in steps, f"tests/default.nf.test reads {path}, but no step publishes to {step}/"
