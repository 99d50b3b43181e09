"""analysis/alignment.py: gradients and Adam updates compared with WGAN's, on cases with known answers."""
import os

import pandas as pd
import pytest
import torch

from analysis import alignment
from minkgan import training as train
from minkgan.utils import run_main

TOY = ["--dataset", "ring8", "--log-every", "5", "--sample-every", "100", "--ckpt-every", "100"]
EMPTY = {"state": {}}
ADAM = (2e-4, (0.5, 0.999), 1e-8)


def tiny_nets(logit_scale, seed=0):
    """A linear G (3 -> 2) and a two-layer D whose logits are about logit_scale in size."""
    torch.manual_seed(seed)
    G = torch.nn.Linear(3, 2).double()
    D = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    with torch.no_grad():
        D[2].weight.mul_(logit_scale / D[2].weight.abs().sum())
        D[2].bias.zero_()
    real, z = torch.randn(64, 2, dtype=torch.float64) * 2, torch.randn(64, 3, dtype=torch.float64)
    return G, D, real, z


def rows_by_loss(logit_scale, run=("wgan", None)):
    G, D, real, z = tiny_nets(logit_scale)
    rows = alignment.compare(G, D, real, z, *run, EMPTY, EMPTY, ADAM, ADAM)
    return {(r["loss"], r["p"]): r for r in rows}


def test_the_reference_against_itself_and_hinge_below_its_margin_are_wgan_exactly():
    rows = rows_by_loss(0.1)
    for key in [("wgan", None), ("hinge", None)]:  # relu(1 - d)' = -1 for every |d| < 1: WGAN's gradient
        assert rows[key]["cos_d"] == pytest.approx(1, abs=1e-12) and rows[key]["ratio_d"] == pytest.approx(1, abs=1e-12)
        assert rows[key]["cos_g"] == pytest.approx(1, abs=1e-12) and rows[key]["ratio_adam_d"] == pytest.approx(1)


@pytest.mark.parametrize("loss, p", [("gan", None), ("nsgan", None), ("minkowski", 1.0), ("minkowski", 2.0),
                                     ("minkowski", 4.0), ("minkowski", 8.0)])
def test_small_logits_make_every_loss_wgan_times_the_predicted_constant_to_first_order(loss, p):
    """The ratio's error is first order in the logits' size, the cosine's second order."""
    pred_d, pred_g = alignment.predicted_ratios(loss, p)
    errors = []
    for scale in (1e-1, 1e-2):
        row = rows_by_loss(scale)[(loss, p)]
        errors.append((abs(row["ratio_d"] / pred_d - 1), 1 - row["cos_d"], abs(row["ratio_g"] / pred_g - 1)))
    (ratio_big, cos_big, g_big), (ratio_small, cos_small, g_small) = errors
    assert ratio_small < 0.15 * ratio_big and ratio_small < 0.05
    assert cos_small < 0.02 * max(cos_big, 1e-15) or cos_small < 1e-10
    assert g_small < 0.15 * g_big or g_small < 1e-10  # saturating GAN's G weight -sigma(d) is even to first order


def test_large_logits_separate_the_losses():
    rows = rows_by_loss(30.0)
    assert rows[("minkowski", 8.0)]["cos_d"] < 0.99 and rows[("gan", None)]["cos_d"] < 0.99


def test_adam_update_reproduces_torch_adam_and_is_blind_to_a_constant_scale():
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(50, dtype=torch.float64))
    opt = torch.optim.Adam([param], lr=1e-3, betas=(0.5, 0.999))
    moments = alignment.adam_moments(opt.state_dict(), [param])
    for _ in range(3):  # the update analysis/alignment.py predicts is the one Adam then makes
        grad = torch.randn(50, dtype=torch.float64)
        predicted = alignment.adam_update(grad, moments, 1.0, 1e-3, (0.5, 0.999), 1e-8)
        before = param.detach().clone()
        param.grad = grad
        opt.step()
        torch.testing.assert_close(param.detach() - before, predicted, rtol=1e-10, atol=1e-15)
        moments = alignment.adam_moments(opt.state_dict(), [param])
    grad = torch.randn(50, dtype=torch.float64)
    own = alignment.adam_update(grad, moments, 1.0, 1e-3, (0.5, 0.999), 1e-8)
    scaled = alignment.adam_update(1e-3 * grad, moments, 1e-3, 1e-3, (0.5, 0.999), 1e-8)
    torch.testing.assert_close(scaled, own, rtol=1e-4, atol=0)  # equal but for Adam's eps


def test_a_run_with_kept_checkpoints_gives_one_row_per_step_and_loss_and_merges(tmp_path, capsys):
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit) as code:
        run_main(lambda: train.main(["--loss", "minkowski", "--p", "4", "--steps", "6", "--save-at", "0", "6",
                                     "--out", out, *TOY]))
    assert code.value.code == 0
    csv = str(tmp_path / "alignment.csv")
    pd.DataFrame([{"run": "other", "total_steps": 10, "step": 1, "loss": "gan", "p": None, "cos_d": 0.5}]).to_csv(
        csv, index=False)
    assert alignment.main([out, "--csv", csv, "--figure", str(tmp_path / "a.png")]) == 0
    table = pd.read_csv(csv)
    mine = table[table["run"] == "run"]
    assert len(mine) == 2 * len(alignment.COMPARED) and sorted(mine["step"].unique()) == [0, 6]
    assert (table["run"] == "other").sum() == 1  # a row of another run is kept
    assert alignment.main([out, "--csv", csv]) == 0
    assert len(pd.read_csv(csv)) == len(table)  # the same rows again replace, not duplicate
    wgan = mine[mine["loss"] == "wgan"]
    assert (wgan["cos_d"] - 1).abs().max() < 1e-9 and os.path.getsize(tmp_path / "a.png") > 0
    shorter = str(tmp_path / "b" / "run")  # the same name, another budget: another run (1 and 2 epochs)
    with pytest.raises(SystemExit):
        run_main(lambda: train.main(["--loss", "minkowski", "--p", "4", "--steps", "4", "--save-at", "0",
                                     "--out", shorter, *TOY]))
    assert alignment.main([shorter, "--csv", csv]) == 0
    both = pd.read_csv(csv)
    assert len(both) == len(table) + len(alignment.COMPARED)
    assert sorted(both.loc[both["step"] == 0, "total_steps"].unique()) == [4, 6]


def test_a_run_without_kept_checkpoints_is_a_one_line_error(tmp_path, capsys):
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit):
        run_main(lambda: train.main(["--loss", "gan", "--steps", "2", "--out", out, *TOY]))
    with pytest.raises(SystemExit) as code:
        run_main(lambda: alignment.main([out, "--csv", str(tmp_path / "a.csv")]))
    assert code.value.code == 2 and "--save-at" in capsys.readouterr().err


def test_the_predicted_updates_use_the_runs_own_adam_eps():
    """A run trained with --adam-eps is compared with the updates its own Adam makes, not torch's default's."""
    cfg = {"lr_d": 1e-4, "lr_g": 2e-4, "beta1": 0.5, "beta2": 0.999}
    assert alignment.adam_settings(cfg, "lr_g") == (2e-4, (0.5, 0.999), 1e-8)  # a run from before the flag
    assert alignment.adam_settings({**cfg, "adam_eps": 1e-12}, "lr_d") == (1e-4, (0.5, 0.999), 1e-12)
