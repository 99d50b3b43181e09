"""FID, KID, precision, recall, density and coverage of a run's checkpoints, and the paper's tables.

    python evaluate.py runs/myrun                 # python evaluate.py --help for the rest

The code is minkgan/evaluation.py, which training's in-run evaluations share.
"""
from minkgan.evaluation import main
from minkgan.utils import run_main

if __name__ == "__main__":
    run_main(main)
