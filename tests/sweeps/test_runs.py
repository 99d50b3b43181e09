"""minkgan/runs.py: the one checked loader of runs.csv, and the filters that decide which runs share a mean."""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from minkgan import paths
from minkgan import runs as runs_csv
from minkgan.utils import UserError

ROOT = paths.ROOT


def row(**kw):
    base = {"run": "folder/gan-seed0", "dataset": "folder", "loss": "gan", "p": None, "n_critic": 1, "seed": 0,
            "epochs": 2.0, "total_steps": 1562, "status": "completed", "arch": "dcgan", "clip": 0.01,
            "clip_params": "all", "adam_eps": None, "n_fake": 5000, "final_fid": 200.0}
    return {**base, **kw}


def write(tmp_path, rows, name="runs.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


HEADER = "step,epoch,loss_d\n"  # a run log's (metrics.csv)


@pytest.mark.parametrize("name, content, words", [
    ("runs.csv", "", "is empty"),
    ("runs.csv", "loss,p,n_critic,seed,epochs,status\n", "a header and no run"),
    ("runs.csv", "name,score\na,1\n", "no column loss"),
    ("metrics.csv", "", "is empty, without even its header"),
    ("metrics.csv", HEADER + "50,0.1,0.5\n30\n100,0.2,0.4\n", "line 3: '30' is not a row of 3 numbers"),
    ("metrics.csv", HEADER + "50,0.1,abc\n", "line 2: '50,0.1,abc'"),
    ("metrics.csv", HEADER + "50,0.1,0.5,7\n", "line 2"),
])
def test_an_unusable_runs_csv_or_run_log_gets_one_line_naming_its_line(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_text(content)
    read = runs_csv.read if name == "runs.csv" else runs_csv.read_log
    with pytest.raises(UserError, match=words):
        read(str(path))


def test_a_missing_file_and_a_missing_metric_are_named(tmp_path):
    with pytest.raises(UserError, match="is not a file"):
        runs_csv.read(str(tmp_path / "none.csv"))
    with pytest.raises(UserError, match="no column final_kid"):
        runs_csv.read(write(tmp_path, [row()]), "final_kid")


def test_a_cell_that_is_not_a_number_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, [row(), row(seed=1, final_fid="abc")])
    with pytest.raises(UserError, match=r"line 3: final_fid is 'abc', not a number"):
        runs_csv.read(path)
    assert runs_csv.read(write(tmp_path, [row(), row(seed=1, final_fid=None)]))["final_fid"].isna().sum() == 1


def test_the_reading_column_names_what_was_clipped(tmp_path):
    runs = runs_csv.read(write(tmp_path, [row(), row(seed=1, clip_params="weights"), row(seed=2, clip_params=None)]))
    assert runs["reading"].tolist() == ["all", "weights", "none"]
    old = pd.DataFrame([row()]).drop(columns="clip_params")  # rows from before the column clipped every parameter
    old.to_csv(tmp_path / "old.csv", index=False)
    assert runs_csv.read(str(tmp_path / "old.csv"))["reading"].tolist() == ["all"]


def test_p_is_kept_for_minkowski_only(tmp_path):
    runs = runs_csv.read(write(tmp_path, [row(p=4.0), row(loss="minkowski", p=4.0, seed=1)]))
    assert np.isnan(runs["p"].iloc[0]) and runs["p"].iloc[1] == 4.0


def test_comparable_keeps_the_paper_optimiser_and_float32(tmp_path):
    rows = [row(), row(seed=1, adam_eps=1e-12), row(seed=2, precision="bfloat16"), row(seed=3, precision=None)]
    runs = runs_csv.read(write(tmp_path, rows))
    assert runs_csv.comparable(runs)["seed"].tolist() == [0, 3]
    assert runs_csv.comparable(runs, 1e-12)["seed"].tolist() == [1]


def test_the_final_fids_precision_is_a_word_and_only_a_float32_fid_shares_a_mean(tmp_path):
    """Observed: a run of today's train.py brings final_fid_precision ('float32') into runs.csv, and the
    loader refused the whole file for a final_ cell that is not a number."""
    rows = [row(final_fid_precision="float32"), row(seed=1, final_fid_precision="bfloat16"), row(seed=2)]
    runs = runs_csv.read(write(tmp_path, rows))
    assert runs["final_fid_precision"].tolist()[:2] == ["float32", "bfloat16"]
    assert runs_csv.comparable(runs)["seed"].tolist() == [0, 2]
    with pytest.raises(UserError, match="final_fid is 'abc'"):
        runs_csv.read(write(tmp_path, [row(final_fid_precision="float32", final_fid="abc")]))


def test_completed_drops_failed_runs_and_runs_without_the_metric(tmp_path):
    runs = runs_csv.read(write(tmp_path, [row(), row(seed=1, status="failed"), row(seed=2, final_fid=None)]))
    assert runs_csv.completed(runs)["seed"].tolist() == [0, 2]
    assert runs_csv.completed(runs, "final_fid")["seed"].tolist() == [0]
    assert runs_csv.is_completed({"status": "completed"}) and not runs_csv.is_completed({"status": "diverged"})


def test_image_runs_are_one_budget_and_one_reading_of_one_protocol(tmp_path):
    rows = [row(), row(seed=1, epochs=1.0051, n_critic=5, loss="wgan"), row(seed=2, clip_params="weights"),
            row(seed=3, arch="pytorchgan"), row(seed=4, clip=0.1), row(seed=5, epochs=10.0), row(seed=6, dataset="ring8")]
    path = write(tmp_path, rows)
    assert runs_csv.image_runs(path, 2)["seed"].tolist() == [0]
    assert runs_csv.image_runs(path, 1)["seed"].tolist() == [1]  # WGAN's 157 G steps of 5 critic steps: epoch 1
    assert runs_csv.image_runs(path, 2, "weights")["seed"].tolist() == [2]
    with pytest.raises(UserError, match="2 FID sample counts"):
        runs_csv.image_runs(write(tmp_path, [row(), row(seed=1, n_fake=2000)]), 2)


def test_the_committed_runs_read_cleanly():
    runs = runs_csv.read(os.path.join(paths.RESULTS, "runs.csv"), "final_fid")
    assert runs["status"].eq("completed").sum() >= 100 and set(runs["reading"]) >= {"all", "weights"}
    assert len(runs_csv.image_runs(os.path.join(paths.RESULTS, "runs.csv"), 2)) >= 20


def results_copy(tmp_path, edit):
    """A copy of the committed results whose runs.csv went through edit(table) -> table."""
    results = tmp_path / "results"
    shutil.copytree(paths.RESULTS, results)
    table = pd.read_csv(results / "runs.csv", dtype=str, keep_default_na=False)
    edit(table).to_csv(results / "runs.csv", index=False)
    return results


def report_check(results):
    return subprocess.run([sys.executable, "report.py", "--check", "--results", str(results)], cwd=ROOT,
                          capture_output=True, text=True)


@pytest.mark.parametrize("edit, words", [
    (lambda t: t[t["loss"] != "gan"], "no completed 2-epoch run of GAN"),
    (lambda t: t.assign(final_fid=t["final_fid"].where(t.index != 3, "abc")), "line 5: final_fid is 'abc'"),
    (lambda t: t.iloc[:0], "a header and no run"),
])
def test_report_on_a_bad_runs_csv_says_one_line(tmp_path, edit, words):
    done = report_check(results_copy(tmp_path, edit))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error:") and words in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_report_on_a_missing_runs_csv_exits_2(tmp_path):
    results = results_copy(tmp_path, lambda t: t)
    os.remove(results / "runs.csv")
    done = report_check(results)
    assert done.returncode == 2 and "runs.csv is not a file" in done.stderr


def test_a_live_runs_torn_last_line_is_dropped_only_where_asked(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(HEADER + "50,0.1,0.5\n100,0.2,0.4\n15")
    assert runs_csv.read_log(str(path), torn_tail="drop")["step"].tolist() == [50, 100]
    with pytest.raises(UserError, match="line 4"):
        runs_csv.read_log(str(path))
    path.write_text(HEADER + "50,0.1,0.5\n1x,0.2,0.4\n100,0.3,0.3\n")  # inside the log: refused even for a live run
    with pytest.raises(UserError, match="line 3"):
        runs_csv.read_log(str(path), torn_tail="drop")


def test_a_log_with_its_header_alone_is_an_empty_table_and_words_are_allowed_where_they_belong(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text("step,fid,fid_precision\n")
    assert list(runs_csv.read_log(str(path)).columns) == ["step", "fid", "fid_precision"]
    path.write_text("step,fid,fid_precision\n781,120.5,bfloat16\n1562,100.0,\n")
    assert runs_csv.read_log(str(path))["fid"].tolist() == [120.5, 100.0]


def test_every_committed_run_log_reads_cleanly():
    logs = [p for p in glob.glob(os.path.join(paths.RESULTS, "run_logs", "*", "*", "*.csv"))
            if p.endswith(("metrics.csv", "eval.csv"))]
    assert len(logs) > 100 and all(len(runs_csv.read_log(p).columns) > 2 for p in logs)


@pytest.mark.parametrize("text", ["", "step,epoch,grad_norm_d,loss_d,loss_g\n50,1.1,0.5,0.1,0.2\n6"])
def test_stability_on_a_bad_metrics_csv_says_one_line(tmp_path, text):
    run = tmp_path / "runs" / "gan-seed0"
    shutil.copytree(os.path.join(paths.RESULTS, "run_logs", "folder-1562steps", "gan-clipweights-seed0"), run)
    (run / "metrics.csv").write_text(text)
    done = subprocess.run([sys.executable, "-m", "analysis.stability", str(tmp_path / "runs")], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error:") and "metrics.csv" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
