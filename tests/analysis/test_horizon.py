"""analysis/horizon.py: rows per evaluation with D's regime at that step, the final FID of 5000 beside them,
and the power-law fit of the logits' growth."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from analysis import horizon


def fake_run(folder, name, loss, p, absmax, total_steps=1000, eval_steps=(100, 200, 400, 1000)):
    """A run of 100 steps an epoch, logged every 50 steps, evaluated at eval_steps (epochs 1, 2, 4, 10)."""
    run = os.path.join(folder, name)
    os.makedirs(run)
    json.dump({"dataset": "folder", "loss": loss, "p": p, "seed": 0, "n_critic": 1, "clip": 0.01, "clip_params": "all",
               "arch": "dcgan", "eval_n": 2000, "total_steps": total_steps, "hardware": "cpu"},
              open(os.path.join(run, "config.json"), "w"))
    steps = np.arange(50, total_steps + 1, 50)
    pd.DataFrame({"step": steps, "epoch": steps / 100, "loss_d": 1.0, "loss_g": 1.0, "grad_norm_d": 1.0,
                  "logit_real": 0.3 * steps / 100, "logit_fake": -0.1 * steps / 100, "logit_absmax": absmax(steps / 100),
                  "clip_share": 0.5}).to_csv(os.path.join(run, "metrics.csv"), index=False)
    pd.DataFrame({"step": list(eval_steps), "fid": [300.0, 250.0, 200.0, 150.0][:len(eval_steps)], "kid": 0.1,
                  "precision": 0.2, "recall": 0.0, "density": 0.3, "coverage": [0.01, 0.02, 0.03, 0.04][:len(eval_steps)]}
                 ).to_csv(os.path.join(run, "eval.csv"), index=False)
    return run


def test_rows_carry_the_regime_at_each_evaluation_and_the_final_fid_of_5000(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "gan-seed0", "gan", 4.0, lambda e: 0.2 * e ** 0.5)
    fake_run(runs, "minkowski-p4-seed0", "minkowski", 4.0, lambda e: 0.1 * e ** 1.5)
    final = tmp_path / "fid5000.csv"
    pd.DataFrame({"run": [str(runs / "gan-seed0")], "steps": [1000], "n_fake": [5000], "fid": [120.0]}).to_csv(final, index=False)
    out, fits, figure = tmp_path / "horizon.csv", tmp_path / "fits.csv", tmp_path / "horizon.png"
    assert horizon.main([str(runs), "--final-csv", str(final), "--csv", str(out), "--fit-csv", str(fits),
                         "--figure", str(figure)]) == 0
    rows = pd.read_csv(out)
    gan = rows[rows["loss"] == "gan"].set_index(["n", "epoch"])
    assert gan.loc[(2000, 4.0), "fid"] == 200.0 and gan.loc[(5000, 10.0), "fid"] == 120.0
    assert gan.loc[(2000, 4.0), "logit_gap"] == pytest.approx(0.4 * 4)  # the interval that ends at step 400
    assert gan.loc[(2000, 1.0), "metrics_step"] == 100 and gan.loc[(2000, 1.0), "clip_share"] == 0.5
    assert len(rows) == 9  # 4 evaluations per run, and the one final FID of 5000
    fit = pd.read_csv(fits).set_index("label")
    assert fit.loc["gan", "exponent"] == pytest.approx(0.5) and fit.loc["minkowski p=4", "exponent"] == pytest.approx(1.5)
    assert fit.loc["gan", "logit_absmax_at_200"] == pytest.approx(0.2 * 200 ** 0.5)
    assert fit.loc["gan", "points"] == 3 and os.path.getsize(figure) > 0  # epochs 2, 4, 10 (from --fit-from 2)


def test_the_regime_of_an_evaluation_before_the_first_log_is_missing():
    metrics = pd.DataFrame({"step": [50], "logit_real": [1.0], "logit_fake": [0.0], "logit_absmax": [1.0]})
    assert np.isnan(horizon.regime_at(metrics, 10)["logit_gap"])


def test_a_short_run_of_the_same_name_draws_no_curve_and_gets_no_final_fid(tmp_path):
    """run_logs/folder-1562steps holds the 10-epoch WGAN and the 2-epoch runs (1562 G steps too), each
    evaluated once; and a 2-epoch gan-seed0 must not take the 10-epoch gan-seed0's final FID of 5000."""
    long, short = tmp_path / "folder-1000steps", tmp_path / "folder-200steps"
    fake_run(long, "gan-seed0", "gan", None, lambda e: 0.2 * e ** 0.5)
    fake_run(long, "minkowski-p4-seed1", "minkowski", 4.0, lambda e: 0.2 * e ** 0.5, eval_steps=(1000,))
    fake_run(short, "gan-seed0", "gan", None, lambda e: 0.2 * e ** 0.5, total_steps=200, eval_steps=(100, 200))
    final = tmp_path / "fid5000.csv"
    pd.DataFrame({"run": ["/elsewhere/folder/gan-seed0"], "steps": [1000], "n_fake": [5000], "fid": [120.0]}).to_csv(
        final, index=False)
    out = tmp_path / "horizon.csv"
    assert horizon.main([str(long), str(short), "--final-csv", str(final), "--csv", str(out)]) == 0
    rows = pd.read_csv(out)
    assert "minkowski" not in set(rows["loss"])  # evaluated once
    assert rows[rows["n"] == 5000]["total_steps"].tolist() == [1000]
    assert sorted(rows.groupby("total_steps").size().items()) == [(200, 2), (1000, 5)]


def test_the_figure_draws_the_runs_of_earlier_calls_merged_into_the_csv(tmp_path, monkeypatch):
    """Each horizon run is collected when it ends: the figure of the last call must show them all."""
    out, drawn = tmp_path / "horizon.csv", []
    monkeypatch.setattr(horizon, "plot", lambda rows, paper, path: drawn.append(set(rows["run"])))
    for name in ("gan-seed0", "wgan-seed0"):
        fake_run(tmp_path / name, name, name.split("-")[0], None, lambda e: 0.2 * e ** 0.5)
        assert horizon.main([str(tmp_path / name), "--csv", str(out), "--figure", str(tmp_path / "h.png")]) == 0
    assert drawn[-1] == {"folder/gan-seed0", "folder/wgan-seed0"}
