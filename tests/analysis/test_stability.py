"""analysis/stability.py: the coefficient of variation over an epoch's window, free of the losses' scale."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from analysis import stability
from minkgan.utils import run_main


def fake_run(folder, name, loss, seed, grad_norm_d, epochs):
    run = os.path.join(folder, name)
    os.makedirs(run)
    json.dump({"dataset": "folder", "loss": loss, "p": 4.0, "seed": seed, "n_critic": 1, "clip": 0.01,
               "clip_params": "all", "arch": "dcgan", "hardware": "cpu"}, open(os.path.join(run, "config.json"), "w"))
    json.dump({"status": "completed", "epoch": 2.0, "total_steps": 1562}, open(os.path.join(run, "summary.json"), "w"))
    pd.DataFrame({"step": np.arange(1, len(epochs) + 1) * 50, "epoch": epochs, "grad_norm_d": grad_norm_d,
                  "loss_d": 2.0, "loss_g": -1.0}).to_csv(os.path.join(run, "metrics.csv"), index=False)


def test_the_cv_of_the_second_epoch_is_sd_over_mean_and_ignores_the_scale(tmp_path):
    epochs = [0.5, 1.0, 1.25, 1.5, 1.75, 2.0]
    values = np.array([100.0, 50.0, 2.0, 3.0, 4.0, 5.0])  # the first epoch's two values are left out
    fake_run(tmp_path, "gan-seed0", "gan", 0, values, epochs)
    fake_run(tmp_path, "minkowski-p4-seed0", "minkowski", 0, values * 1e-3, epochs)
    out = tmp_path / "stability.csv"
    assert stability.main([str(tmp_path), "--csv", str(out)]) == 0
    rows = pd.read_csv(out).set_index("loss")
    second = values[2:]
    expected = np.sqrt(((second - second.mean()) ** 2).sum() / 3) / second.mean()
    assert rows.loc["gan", "cv_grad_norm_d"] == pytest.approx(expected, rel=1e-12)
    assert rows.loc["minkowski", "cv_grad_norm_d"] == pytest.approx(expected, rel=1e-12)  # 1000x smaller, same CV
    assert rows.loc["gan", "cv_loss_d"] == 0 and rows.loc["gan", "intervals"] == 4
    assert rows.loc["gan", "clip_params"] == "all" and rows.loc["gan", "total_steps"] == 1562


def test_a_window_with_no_runs_is_one_line(tmp_path, capsys):
    fake_run(tmp_path, "gan-seed0", "gan", 0, [1.0, 2.0], [0.5, 1.0])
    with pytest.raises(SystemExit) as code:
        run_main(lambda: stability.main([str(tmp_path)]))
    err = capsys.readouterr().err
    assert code.value.code == 2 and err.count("\n") == 1 and "no run with two logged intervals" in err
