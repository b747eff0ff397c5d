"""Honest evaluation: held-out-gene cross-validation, canonical metrics, trust, figures.

Modules: ``metrics`` (per-gene PCC/SSIM/RMSE/JS, AS), ``crossval`` (folds, the paper protocol),
``scoring`` (metrics tables), ``trust`` (expected accuracy, interval coverage), ``figures``,
``evaluate`` (file-in/file-out steps), ``cli``. The benchmark and ablation harness that writes
the docs pages is :mod:`causalged.research`, apart from the method.
"""
