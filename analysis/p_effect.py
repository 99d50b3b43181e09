"""Does the Minkowski exponent p change the metrics at all (ANOVA and permutation test)?
python -m analysis.p_effect --help. The code is minkgan/p_effect.py, shared with report.py.
"""
import os
import sys

if not __package__:  # run as a path (python analysis/p_effect.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minkgan.p_effect import main
from minkgan.utils import run_main

if __name__ == "__main__":
    run_main(main)
