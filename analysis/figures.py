"""Draw a runs folder's curves and sample grids: python -m analysis.figures RUNS_DIR --out FOLDER.

The code is minkgan/figures.py, shared with ablate_p.py (which draws the figures of every sweep).
"""
import os
import sys

if not __package__:  # run as a path (python analysis/figures.py), not with -m: the library is one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minkgan.figures import main
from minkgan.utils import run_main

if __name__ == "__main__":
    run_main(main)
