"""The analyses behind docs/: each a command, run from the repository root as `python -m analysis.NAME` or `python analysis/NAME.py`.
They read run folders or results/runs.csv and write results CSVs and figures (results/ only when named).
"""
