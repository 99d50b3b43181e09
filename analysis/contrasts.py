"""The pre-registered Welch contrasts of results/runs.csv: python -m analysis.contrasts --help.

The code is minkgan/contrasts.py, shared with report.py.
"""
import os
import sys

if not __package__:  # run as a path (python analysis/contrasts.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minkgan.contrasts import main
from minkgan.utils import run_main

if __name__ == "__main__":
    run_main(main)
