"""The paper's derivations about its loss, checked numerically: python -m analysis.derivations.

The code is minkgan/derivations.py, shared with report.py (the derivations page's table).
"""
import os
import sys

if not __package__:  # run as a path (python analysis/derivations.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minkgan.derivations import main
from minkgan.utils import run_main

if __name__ == "__main__":
    run_main(main)
