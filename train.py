"""Train a GAN with any loss of losses.py; the defaults are the paper's Table 1.

    python train.py --loss minkowski --p 4                 # CIFAR-10, 200 epochs, as the paper
    python train.py --dataset ring8 --steps 3000           # the 2-D benchmark, minutes on a CPU

The flags are minkgan/settings.py, the step minkgan/trainstep.py and the loop minkgan/training.py, which
the sweep, the benchmarks and the analyses share.
"""
from minkgan.training import main
from minkgan.utils import run_main

if __name__ == "__main__":
    run_main(main)
