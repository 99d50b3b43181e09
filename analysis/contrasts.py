"""The pre-registered Welch contrasts of results/runs.csv: python -m analysis.contrasts --help.

The code is minkgan/contrasts.py, shared with report.py.
"""
from minkgan.contrasts import main
from minkgan.utils import run_main

if __name__ == "__main__":
    run_main(main)
