"""The paper's derivations about its loss, checked numerically: python -m analysis.derivations.

The code is minkgan/derivations.py, shared with report.py (the derivations page's table).
"""
from minkgan.derivations import main
from minkgan.utils import run_main

if __name__ == "__main__":
    run_main(main)
