"""train.py --tensorboard: the events hold every row of metrics.csv and eval.csv, and each sample grid;
without the package the flag is a one-line error before anything is written."""
import os
import subprocess
import sys

import pandas as pd
import pytest

from minkgan import training as train

from layout import ROOT  # noqa: E402
ARGV = ["--dataset", "ring8", "--steps", "40", "--log-every", "10", "--eval-every", "20", "--sample-every", "20",
        "--fused", "off", "--tensorboard"]


def events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    return EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0}).Reload()


def assert_scalars_equal(logged, frame, group):
    for column in frame.columns.drop("step"):
        if frame[column].notna().all():
            points = logged.Scalars(f"{group}/{column}")
            assert [e.step for e in points] == list(frame["step"]), column
            assert [e.value for e in points] == pytest.approx(list(frame[column]), rel=1e-6), column


def test_the_events_hold_the_csv_rows_and_the_sample_grids(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install tensorboard")
    out = tmp_path / "run"
    assert train.main([*ARGV, "--out", str(out)]) == 0
    logged = events(out / "tensorboard")
    assert_scalars_equal(logged, pd.read_csv(out / "metrics.csv"), "train")
    assert_scalars_equal(logged, pd.read_csv(out / "eval.csv"), "eval")
    assert "eval/modes" in logged.Tags()["scalars"]
    grids = logged.Images("samples")
    assert [g.step for g in grids] == [20, 40] and all(g.width > 0 and g.height > 0 for g in grids)


def test_a_resumed_run_replaces_the_events_past_its_checkpoint(tmp_path):
    """Resumed from step 20 of a run that logged to 30, the events of step 30 are replaced, not doubled,
    and still equal metrics.csv's rows."""
    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install tensorboard")
    out = tmp_path / "run"
    assert train.main([*ARGV, "--out", str(out), "--steps", "30", "--save-at", "20"]) == 0
    os.replace(out / "checkpoints" / "step0000020.pt", out / "checkpoints" / "last.pt")  # as if killed after step 20
    assert train.main([*ARGV, "--out", str(out), "--resume"]) == 0
    logged = events(out / "tensorboard")
    assert [e.step for e in logged.Scalars("train/loss_d")] == [10, 20, 30, 40]
    assert_scalars_equal(logged, pd.read_csv(out / "metrics.csv"), "train")


def test_overwrite_starts_the_events_again(tmp_path):
    """--overwrite deletes what train.py wrote, its events included: the new run's curves start alone."""
    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install tensorboard")
    out = tmp_path / "run"
    assert train.main([*ARGV, "--out", str(out), "--steps", "30"]) == 0
    assert train.main([*ARGV, "--out", str(out), "--steps", "20", "--overwrite"]) == 0
    assert len(os.listdir(out / "tensorboard")) == 1
    assert [e.step for e in events(out / "tensorboard").Scalars("train/loss_d")] == [10, 20]


def test_without_the_package_the_flag_is_a_one_line_error_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    code = ("import sys; sys.modules['tensorboard'] = None; from minkgan import training as train, utils; "
            f"utils.run_main(lambda: train.main({[*ARGV, '--out', str(out)]!r}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "pip install tensorboard" in result.stderr and not out.exists()
