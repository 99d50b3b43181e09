"""Draw a runs folder's curves and sample grids: python -m analysis.figures RUNS_DIR --out FOLDER.

The code is minkgan/figures.py, shared with ablate_p.py (which draws the figures of every sweep).
"""
from minkgan.figures import main
from minkgan.utils import run_main

if __name__ == "__main__":
    run_main(main)
