"""Strict nf-lang lint of every .nf and .config file, with Nextflow's own parser.

Nextflow cannot run here, but its parser (ScriptParser / ConfigParser from the language server,
the code behind `nextflow lint`) can: tests/nf/nf_lint.groovy runs it over the pipeline. The jar is
fetched by .ci/fetch-nf-tools.sh; without it these tests skip (or fail when
CAUSALGED_REQUIRE_NF_LANG is set, as CI does).
"""

from __future__ import annotations

import subprocess

import pytest

from nf import nfsource


def lint(files) -> tuple[list[list[str]], list[list[str]], str]:
    """(errors, warnings, raw output) of the strict parser over ``files``."""
    result = subprocess.run(nfsource.groovy_command("nf_lint.groovy", *map(str, files)), capture_output=True, text=True, timeout=300)
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    errors = [r for r in rows if r[0] == "ERROR"]
    warnings = [r for r in rows if r[0] == "WARNING"]
    summary = [r for r in rows if r[0] == "SUMMARY"]
    assert summary, f"nf_lint.groovy did not finish:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == (1 if errors else 0), result.stderr[-3000:]
    return errors, warnings, result.stdout


@pytest.fixture(scope="module")
def pipeline_lint():
    files = nfsource.nextflow_scripts() + nfsource.nextflow_configs()
    assert len(files) >= 10, "pipeline files not found"
    return lint(files)


def _fmt(rows) -> str:
    return "\n".join(f"{path.replace(str(nfsource.REPO) + '/', '')}:{line}:{col}: {msg}" for _lvl, path, line, col, msg in rows)


def test_pipeline_has_no_lint_errors(pipeline_lint):
    errors, _warnings, _out = pipeline_lint
    assert not errors, "nf-lang strict parser errors:\n" + _fmt(errors)


#: The one deprecation we keep: nf-core's module form requires `when: task.ext.when == null || task.ext.when`.
WHEN_DEPRECATION = "Process `when` section will not be supported in a future version"


def test_pipeline_has_no_lint_warnings(pipeline_lint):
    """Warnings are deprecations of the strict syntax (e.g. params outside the entry workflow); only the
    `when:` section of the modules, and only once per module, is allowed."""
    _errors, warnings, _out = pipeline_lint
    other = [w for w in warnings if not (w[4] == WHEN_DEPRECATION and "/modules/" in w[1])]
    assert not other, "nf-lang strict parser warnings:\n" + _fmt(other)
    assert len(warnings) - len(other) <= len(list((nfsource.REPO / "modules").rglob("main.nf")))


def test_every_pipeline_file_was_parsed(pipeline_lint):
    _errors, _warnings, out = pipeline_lint
    n_files = len(nfsource.nextflow_scripts() + nfsource.nextflow_configs())
    assert f"SUMMARY\t{n_files} files\t" in out


def test_linter_catches_strict_syntax_errors(tmp_path):
    """The check is not vacuous: a broken include, an undefined process and a trailing emit comma fail."""
    (tmp_path / "mod.nf").write_text('process FOO {\n    output:\n    path "x", emit: x,\n\n    script:\n    "touch x"\n}\n')
    (tmp_path / "main.nf").write_text("include { FOO } from './mod'\ninclude { BAR } from './missing'\n\nworkflow {\n    FOO()\n    BAZ()\n}\n")
    errors, _warnings, _out = lint([tmp_path / "main.nf", tmp_path / "mod.nf"])
    messages = " | ".join(r[4] for r in errors)
    assert "Invalid include source" in messages
    assert "`BAZ` is not defined" in messages
    assert any(r[1].endswith("mod.nf") for r in errors), messages
