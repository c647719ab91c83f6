"""Benchmarks: ``python -m benchmarks`` runs every part into one markdown table
(``benchmarks.cli``); one module per part, timing helpers in ``benchmarks.timing``."""
