"""Honest evaluation: held-out-gene cross-validation, canonical metrics, trust, figures, benchmark.

Modules: ``metrics`` (per-gene PCC/SSIM/RMSE/JS, AS), ``crossval`` (folds, the paper protocol),
``scoring`` (metrics tables), ``trust`` (expected accuracy, interval coverage), ``figures``,
``evaluate`` (file-in/file-out steps), ``benchmark`` (docs/benchmarks.md), ``cli``.
"""
