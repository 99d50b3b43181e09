"""Does the Minkowski exponent p change the metrics at all (ANOVA and permutation test)?
python -m analysis.p_effect --help. The code is minkgan/p_effect.py, shared with report.py.
"""
from minkgan.p_effect import main
from minkgan.utils import run_main

if __name__ == "__main__":
    run_main(main)
