"""The paper's numbers, read in one place: results/paper.csv holds its Table 2 (GAN, WGAN, Minkowski
p = 4) and Table 3 (Minkowski by p), each FID of 5000 generated CIFAR-10 images after 200 epochs."""
import pandas as pd

from minkgan import paths

# Table 1's setup, as train.py's flags: CIFAR-10, z of 100, Adam 2e-4 with betas (0.5, 0.999), batch 64,
# 200 epochs, D's weights clipped to [-0.01, 0.01] for every model (the nets: "DCGAN-style", no layers given)
TABLE1 = {"dataset": "cifar10", "arch": "dcgan", "z_dim": 100, "lr": 2e-4, "beta1": 0.5, "beta2": 0.999,
          "batch_size": 64, "epochs": 200, "clip": 0.01}

# Table 2's losses in the order its rows are shown here, the paper's three first, then the other baselines
TABLE2_LOSSES = ("gan", "wgan", "minkowski", "nsgan", "wgan-gp", "lsgan", "hinge")

def table(path=paths.PAPER_CSV):
    """Every row of paper.csv: table (2 or 3), loss, p (Minkowski only), fid, source."""
    return pd.read_csv(path)


def fid(loss, p=None, path=paths.PAPER_CSV):
    """The paper's FID of a loss (Minkowski's at p; Table 2's where both tables hold it), None where the
    paper has no such run."""
    rows = table(path)
    rows = rows[(rows["loss"] == loss) & ((rows["p"] == p) if loss == "minkowski" else rows["p"].isna())]
    return float(rows["fid"].min()) if len(rows) else None
