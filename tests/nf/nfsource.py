"""Read the pipeline's own Nextflow files for the tests: processes, includes, config blocks.

This is a light reader for the layout this repository uses (one process per module, sections
such as ``output:`` on their own line, balanced braces). It checks structure and extracts text;
whether the files are valid Nextflow is the job of the real parser (tests/test_nextflow_lint.py),
and Groovy semantics come from the parser's own Groovy (tests/nf/render.groovy).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NF_DIR = Path(__file__).resolve().parent
JAR_ENV = "NF_LANG_JAR"
DEFAULT_JAR = REPO / ".cache" / "nf-lang" / "language-server-all.jar"
REQUIRE_ENV = "CAUSALGED_REQUIRE_NF_LANG"

SECTION_RE = re.compile(r"^\s*(input|output|script|stub|exec|shell|when|topic):\s*$", re.M)
PATH_RE = re.compile(r"""path\s*\(?\s*("[^"]*"|'[^']*')""")
INPUT_RE = re.compile(r"\b(val|path|env|stdin|file)\s*(?:\(\s*|\s+)(\w+)")


def nextflow_scripts() -> list[Path]:
    """Every .nf file of the pipeline."""
    files = [REPO / "main.nf", *sorted((REPO / "workflows").rglob("*.nf"))]
    files += sorted((REPO / "subworkflows").rglob("*.nf")) + sorted((REPO / "modules").rglob("*.nf"))
    return [f for f in files if f.exists()]


def nextflow_configs() -> list[Path]:
    """Every .config file of the pipeline."""
    return [REPO / "nextflow.config", *sorted((REPO / "conf").glob("*.config"))]


def block_end(text: str, open_brace: int) -> int:
    """Index just past the brace that closes the one at ``open_brace`` (braces in GStrings balance)."""
    depth = 0
    for i in range(open_brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError(f"unbalanced braces from offset {open_brace}")


def named_blocks(text: str, keyword: str) -> dict[str, str]:
    """``keyword NAME { body }`` blocks (process, workflow) by name -> body."""
    blocks = {}
    for m in re.finditer(rf"^{keyword}\s+(\w+)\s*\{{", text, re.M):
        end = block_end(text, m.end() - 1)
        blocks[m.group(1)] = text[m.end() : end - 1]
    return blocks


def scope_block(text: str, name: str) -> str:
    """Body of the first top-level-looking ``name { ... }`` block (``params``, ``profiles``)."""
    m = re.search(rf"^\s*{re.escape(name)}\s*\{{", text, re.M)
    if not m:
        raise KeyError(f"no '{name} {{' block")
    return text[m.end() : block_end(text, m.end() - 1) - 1]


def top_level_names(body: str) -> list[str]:
    """Names of the blocks directly inside ``body`` (e.g. the profiles inside ``profiles { }``)."""
    names, i = [], 0
    for m in re.finditer(r"^\s*([A-Za-z_]\w*)\s*\{", body, re.M):
        if m.start() < i:
            continue
        names.append(m.group(1))
        i = block_end(body, m.end() - 1)
    return names


@dataclass
class Output:
    line: str
    patterns: list[str]
    emit: str | None
    optional: bool


@dataclass
class Process:
    name: str
    path: Path
    body: str
    sections: dict[str, str] = field(default_factory=dict)

    @property
    def directives(self) -> str:
        """The text before the first section: tag, label, container, ..."""
        first = SECTION_RE.search(self.body)
        return self.body[: first.start()] if first else self.body

    @property
    def labels(self) -> list[str]:
        return re.findall(r"^\s*label\s+['\"](\w+)['\"]", self.directives, re.M)

    @property
    def tag(self) -> str | None:
        m = re.search(r"^\s*tag\s+(\"[^\"]*\"|'[^']*')", self.directives, re.M)
        return m.group(1)[1:-1] if m else None

    @property
    def input_lines(self) -> list[str]:
        return [ln.strip() for ln in self.sections.get("input", "").splitlines() if ln.strip() and not ln.strip().startswith("//")]

    @property
    def input_names(self) -> list[str]:
        """Input variable names in declaration order (``meta``, ``sc``, ...)."""
        return [name for line in self.input_lines for _kind, name in INPUT_RE.findall(line)]

    @property
    def outputs(self) -> list[Output]:
        outs = []
        for line in self.sections.get("output", "").splitlines():
            line = line.strip()
            if not line or line.startswith("//"):
                continue
            emit = re.search(r"emit:\s*(\w+)", line)
            outs.append(Output(line, [p[1:-1] for p in PATH_RE.findall(line)], emit.group(1) if emit else None, bool(re.search(r"optional:\s*true", line))))
        return outs

    @property
    def commands(self) -> list[str]:
        """The ``causalged-<step>`` / tool names the script section calls."""
        return re.findall(r"^\s*(causalged-[\w-]+|multiqc)\b", self.sections.get("script", ""), re.M)


def processes() -> list[Process]:
    """Every process of modules/, with its sections split out."""
    found = []
    for path in sorted((REPO / "modules").rglob("main.nf")):
        text = path.read_text()
        for name, body in named_blocks(text, "process").items():
            marks = list(SECTION_RE.finditer(body))
            sections = {m.group(1): body[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(body)] for i, m in enumerate(marks)}
            found.append(Process(name, path, body, sections))
    return found


def with_name_blocks(config_text: str) -> dict[str, str]:
    """``withName: 'X' { ... }`` bodies by selector."""
    blocks = {}
    for m in re.finditer(r"withName\s*:\s*['\"]([^'\"]+)['\"]\s*\{", config_text):
        blocks[m.group(1)] = config_text[m.end() : block_end(config_text, m.end() - 1) - 1]
    return blocks


def profile_block(name: str) -> str:
    """Body of ``profiles { name { ... } }`` in nextflow.config."""
    profiles = scope_block((REPO / "nextflow.config").read_text(), "profiles")
    m = re.search(rf"^\s*{re.escape(name)}\s*\{{", profiles, re.M)
    if not m:
        raise KeyError(f"no profile {name!r}")
    return profiles[m.end() : block_end(profiles, m.end() - 1) - 1]


def label_block(text: str, label: str) -> str:
    """Body of ``withLabel: 'label' { ... }``."""
    m = re.search(rf"withLabel\s*:\s*['\"]{re.escape(label)}['\"]\s*\{{", text)
    if not m:
        raise KeyError(f"no withLabel: '{label}' block")
    return text[m.end() : block_end(text, m.end() - 1) - 1]


def closure_assignment(body: str, name: str) -> str | None:
    """The source of ``name = { ... }`` (a closure) or ``name = expr`` inside a config block."""
    m = re.search(rf"^\s*{re.escape(name)}\s*=\s*", body, re.M)
    if not m:
        return None
    if body[m.end()] == "{":
        return body[m.end() : block_end(body, m.end())]
    return body[m.end() :].splitlines()[0].strip()


# ----------------------------------------------------------------------------- nf-lang jar / Groovy


def nf_lang_jar() -> Path | None:
    """The language-server jar (fetched by .ci/fetch-nf-tools.sh), or None."""
    jar = Path(os.environ.get(JAR_ENV, DEFAULT_JAR))
    return jar if jar.is_file() else None


def require_groovy():
    """(java, jar), or skip the test with the reason, or fail when CI demands the jar."""
    import pytest

    java = shutil.which("java")
    jar = nf_lang_jar()
    if java and jar:
        return java, jar
    reason = (
        f"Nextflow language-server jar not found at {os.environ.get(JAR_ENV, DEFAULT_JAR)} (run .ci/fetch-nf-tools.sh)"
        if not jar
        else "java is not installed"
    )
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason}; {REQUIRE_ENV} is set, so this check may not be skipped")
    pytest.skip(reason)


def groovy_command(script: str, *args: str) -> list[str]:
    """argv running tests/nf/<script> with the jar's Groovy and nf-lang classes (fast JVM start)."""
    java, jar = require_groovy()
    return [java, "-Xshare:auto", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", str(jar), "groovy.ui.GroovyMain", str(NF_DIR / script), *args]


class Renderer:
    """One long-lived render.groovy process: evaluates Groovy snippets as Nextflow would."""

    def __init__(self):
        self.proc = subprocess.Popen(groovy_command("render.groovy", "--serve"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def render(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"render.groovy exited (status {self.proc.poll()}); see stderr above")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"render.groovy could not evaluate a snippet: {reply['error']}")
        return reply

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
