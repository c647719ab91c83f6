"""Benchmarks: ``python -m mtlface.bench`` runs every part into one markdown table
(``mtlface.bench.cli``); one module per part, timing helpers in ``mtlface.bench.timing``."""
