"""The benchmark and ablation harness that writes the docs pages; not part of the imputation method.

``benchmark`` (``causalged benchmark`` -> docs/benchmarks*.md: every method on named datasets,
several seeds) and ``ablation`` (``causalged ablate`` -> docs/ablations.md: the paper's claims,
one axis at a time) drive the method and its evaluation from outside, the way a reader of the
docs would. Nothing in causalged outside ``research/`` and the CLI may import it, so the
method never depends on how it is benchmarked (tests/test_layout.py checks this).
"""
