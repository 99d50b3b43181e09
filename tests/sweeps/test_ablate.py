"""ablate_p.py: planning, sharding, skip and resume, failures recorded, --collect, a real sweep."""
import json
import os
import signal
import subprocess
import sys
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import ablate_p

from minkgan import sweep

from minkgan import collect
from minkgan import figures
import losses
from minkgan import failure, rundir
from minkgan.utils import run_main

from layout import ROOT  # noqa: E402


def args_for(argv):
    return ablate_p.parse(argv)


def test_plan_has_one_run_per_loss_p_and_seed():
    args, passthrough = args_for(["--dataset", "ring8", "--losses", "all", "--p", "1", "2.5", "--seeds", "0", "1",
                                  "--steps", "10"])
    runs = ablate_p.plan(args, passthrough)
    names = [name for name, _, _ in runs]
    assert len(names) == len(set(names)) == (len(losses.LOSSES) - 1 + 2) * 2
    assert "ring8/minkowski-p2.5-seed1" in names and "ring8/wgan-gp-seed0" in names
    argv = {name: argv for name, argv, _ in runs}["ring8/minkowski-p2.5-seed1"]
    assert argv[argv.index("--p") + 1] == "2.5" and argv[-2:] == ["--steps", "10"] and "--resume" in argv


@pytest.mark.parametrize("flags, own", [
    (["--out", "x"], "--runs"), (["--out=x"], "--runs"), (["--ou", "x"], "--runs"), (["--resume"], "always resumes"),
    (["--overwrite"], "delete"), (["--seed", "3"], "--seeds"), (["--loss", "gan"], "--losses"),
])
def test_flags_that_name_a_run_are_not_forwarded(flags, own, capsys):
    """Observed: --out went through to every run, which all trained into one directory at once."""
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: ablate_p.main(["--dataset", "ring8", "--dry-run", *flags]))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith(f"error: {flags[0]}") and own in err and err.count("\n") == 1


def test_help_names_the_forwarded_flags():
    text = ablate_p.build_parser().format_help()
    assert "--clip-params" in text.split("goes through")[1] and "--overwrite" not in text.split("goes through")[1]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_shards_cover_every_run_exactly_once(n):
    runs = list(range(23))
    shares = [ablate_p.shard(runs, k, n) for k in range(n)]
    assert sorted(sum(shares, [])) == runs
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_shard_comes_from_slurm(monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    assert ablate_p.parse_shard(None) == (2, 4)
    assert ablate_p.parse_shard("1/3") == (1, 3)


@pytest.mark.parametrize("text", ["3/3", "a/b", "1", "-1/2"])
def test_bad_shards_are_user_errors(text):
    with pytest.raises(ablate_p.UserError):
        ablate_p.parse_shard(text)


def fabricate_run(runs_dir, name, loss, p, seed, status, **metrics):
    dataset = metrics.pop("dataset", "ring8")
    total_steps = metrics.pop("total_steps", 100)
    step = metrics.pop("step", 100)
    run_dir = os.path.join(runs_dir, dataset, name)
    os.makedirs(run_dir)
    cfg = {"dataset": dataset, "loss": loss, "p": p, "seed": seed, "eval_n": 2500,
           "hardware": "test cpu",
           **{k: metrics.pop(k) for k in ("n_critic", "adam_eps", "arch", "clip", "clip_params") if k in metrics}}
    json.dump(cfg, open(os.path.join(run_dir, "config.json"), "w"))
    json.dump({"status": status, "step": step, "total_steps": total_steps, "epoch": 0.5, **metrics},
              open(os.path.join(run_dir, "summary.json"), "w"))
    pd.DataFrame({"step": [50, 100], "loss_d": 1.0, "loss_g": 1.0, "grad_norm_d": 1.0}).to_csv(
        os.path.join(run_dir, "metrics.csv"), index=False)  # for the figures
    os.makedirs(os.path.join(run_dir, "samples"))
    plt.imsave(os.path.join(run_dir, "samples", "step0000100.png"), np.zeros((4, 4)))


def test_finished_runs_are_skipped_without_starting_a_process(tmp_path, monkeypatch):
    fabricate_run(tmp_path, "gan-seed0", "gan", 4.0, 0, "completed")
    monkeypatch.setattr(sweep.subprocess, "Popen", lambda *a, **k: pytest.fail("a finished run was started again"))
    out = str(tmp_path / "ring8" / "gan-seed0")
    name, status, note = sweep.train_one("ring8/gan-seed0", ["--out", out], {}, str(tmp_path), 1, sweep.Children())
    assert status == "completed" and "skipped" in note


@pytest.mark.parametrize("checkpointed, flag", [(True, "--resume"), (False, "--overwrite")])
def test_a_run_without_a_checkpoint_starts_again_and_a_checkpointed_one_resumes(checkpointed, flag, tmp_path):
    """train.py --resume refuses a run's files with no checkpoint to continue from; in a sweep such a
    run (killed before its first checkpoint, or a failed start) has nothing to lose and starts again."""
    fabricate_run(tmp_path, "gan-seed0", "gan", None, 0, "interrupted")
    out = tmp_path / "ring8" / "gan-seed0"
    if checkpointed:
        (out / "checkpoints").mkdir()
        (out / "checkpoints" / "last.pt").write_bytes(b"a checkpoint")
    children, started = sweep.Children(), []
    children.start = lambda cmd, **kwargs: started.append(cmd)  # records the command, starts nothing
    sweep.train_one("ring8/gan-seed0", ["--out", str(out), "--resume"], {}, str(tmp_path), 1, children)
    assert started[0][-3:] == ["--out", str(out), flag]


class LateSignal:
    """A train.py process that wrote its completed summary.json and was then killed by the sweep's
    SIGTERM before it exited: exit code -15, nothing on stderr."""
    returncode = -signal.SIGTERM

    def communicate(self):
        return "", ""


def test_a_run_completed_before_a_late_sigterm_stays_completed(tmp_path):
    """Observed: failed.json beside a completed summary.json, and runs.csv saying "failed" for good."""
    out = tmp_path / "ring8" / "gan-seed0"
    children = sweep.Children()

    def start(cmd, **kwargs):
        fabricate_run(tmp_path, "gan-seed0", "gan", None, 0, "completed", final_modes=8)
        return LateSignal()

    children.start = start
    name, status, note = sweep.train_one("ring8/gan-seed0", ["--out", str(out), "--resume"], {}, str(tmp_path), 1,
                                            children)
    assert status == "completed" and not (out / "failed.json").exists()
    assert collect.collect_rows(str(tmp_path))["status"].tolist() == ["completed"]


def test_a_stale_failed_json_beside_a_completed_run_is_ignored_and_healed(tmp_path):
    fabricate_run(tmp_path, "gan-seed0", "gan", None, 0, "completed", final_modes=8)
    out = tmp_path / "ring8" / "gan-seed0"
    (out / "failed.json").write_text(json.dumps({"dataset": "ring8", "loss": "gan", "p": None, "seed": 0,
                                                 "status": "failed", "exit_code": -15, "error": None}))
    rows = collect.collect_rows(str(tmp_path))
    assert rows[["status", "final_modes"]].values.tolist() == [["completed", 8]]
    name, status, note = sweep.train_one("ring8/gan-seed0", ["--out", str(out)], {}, str(tmp_path), 1,
                                            sweep.Children())
    assert status == "completed" and "skipped" in note and not (out / "failed.json").exists()


def test_collect_averages_seeds_and_counts_failures(tmp_path):
    for seed, modes in enumerate([8, 6, 7]):
        fabricate_run(tmp_path, f"minkowski-p4-seed{seed}", "minkowski", 4.0, seed, "completed",
                      final_modes=modes, final_hq_pct=90.0 + seed, final_rkl=0.1)
    fabricate_run(tmp_path, "gan-seed0", "gan", 4.0, 0, "diverged", final_modes=1)
    fabricate_run(tmp_path, "gan-seed1", "gan", 4.0, 1, "completed", final_modes=3, final_hq_pct=50.0, final_rkl=1.0)
    table = collect.aggregate(collect.collect_rows(str(tmp_path)), collect.METRICS["toy"]).set_index("loss")
    assert table.loc["minkowski", "final_modes_mean"] == 7 and table.loc["minkowski", "final_modes_std"] == 1
    assert table.loc["minkowski", "p"] == 4 and pd.isna(table.loc["gan", "p"])
    assert table.loc["gan", "final_modes_mean"] == 3  # the diverged seed is counted, not averaged
    assert (table.loc["gan", "seeds"], table.loc["gan", "diverged"], table.loc["gan", "completed"]) == (2, 1, 1)


def test_a_metric_missing_in_some_seeds_is_averaged_over_the_others_and_counted(tmp_path):
    """Reverse KL is undefined when no mode is captured: the mean covers the seeds that have it, and says how many."""
    for seed, (modes, rkl) in enumerate([(1, 3.2), (0, None), (1, 3.0)]):
        fabricate_run(tmp_path, f"minkowski-p1-seed{seed}", "minkowski", 1.0, seed, "completed",
                      final_modes=modes, final_hq_pct=10.0, final_rkl=rkl)
    fabricate_run(tmp_path, "gan-seed0", "gan", None, 0, "completed", final_modes=8, final_hq_pct=5.0, final_rkl=0.3)
    table = collect.aggregate(collect.collect_rows(str(tmp_path)), collect.METRICS["toy"]).set_index("loss")
    mink = table.loc["minkowski"]
    assert mink["final_rkl_mean"] == pytest.approx(3.1) and mink["final_rkl_n"] == 2
    assert mink["final_modes_n"] == 3 and mink["completed"] == 3
    assert table.loc["gan", "final_modes_n"] == 1 and pd.isna(table.loc["gan", "final_modes_std"])  # one seed: no std


def test_collect_writes_the_paper_tables_for_image_runs(tmp_path):
    for seed, (final, best, recall) in enumerate([(120.0, 110.0, 0.2), (130.0, 100.0, 0.4)]):
        fabricate_run(tmp_path / "runs", f"minkowski-p4-seed{seed}", "minkowski", 4.0, seed, "completed",
                      dataset="cifar10", final_fid=final, best_fid=best, final_kid=0.1, final_precision=0.5,
                      final_recall=recall, final_density=0.9, final_coverage=0.3, final_fid_floor=8.0,
                      final_fid_floor_test=9.0)
    fabricate_run(tmp_path / "runs", "gan-seed0", "gan", 4.0, 0, "completed", dataset="cifar10",
                  final_fid=200.0, best_fid=190.0, final_kid=0.2)  # evaluated before the other metrics existed
    rows = collect.collect_rows(str(tmp_path / "runs"))
    collect.write_tables(rows, str(tmp_path / "results"))
    t2 = pd.read_csv(tmp_path / "results" / "table2.csv")
    mink = t2[(t2["loss"] == "minkowski")].iloc[0]
    assert (mink["paper_fid"], mink["fid_mean"], mink["best_fid_mean"], mink["seeds"]) == (99.6, 125.0, 105.0, 2)
    assert (mink["precision_mean"], mink["recall_mean"], mink["density_mean"], mink["coverage_mean"]) == \
        pytest.approx((0.5, 0.3, 0.9, 0.3))
    assert (mink["fid_floor"], mink["fid_floor_test"], mink["kid_mean"]) == pytest.approx((8.0, 9.0, 0.1))
    gan = t2[t2["loss"] == "gan"].iloc[0]
    assert gan["fid_mean"] == 200.0 and gan["kid_mean"] == 0.2
    assert pd.isna(gan["recall_mean"]) and pd.isna(gan["fid_floor"])
    t3 = pd.read_csv(tmp_path / "results" / "table3.csv")
    assert t3["p"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8] and t3["paper_fid"].iloc[0] == 128.4


def test_runs_csv_keeps_the_logit_gap_and_largest_logit_of_the_last_logged_interval(tmp_path):
    fabricate_run(tmp_path, "minkowski-p8-seed0", "minkowski", 8.0, 0, "completed", dataset="folder", final_fid=300.0)
    fabricate_run(tmp_path, "gan-seed0", "gan", None, 0, "completed", dataset="folder", final_fid=200.0)
    metrics = os.path.join(tmp_path, "folder", "minkowski-p8-seed0", "metrics.csv")
    pd.DataFrame({"step": [50, 100], "logit_real": [0.3, 0.012], "logit_fake": [-0.2, 0.005],
                  "logit_absmax": [0.9, 0.04]}).to_csv(metrics, index=False)
    rows = collect.collect_rows(str(tmp_path)).set_index("loss")
    assert rows.loc["minkowski", "final_logit_gap"] == pytest.approx(0.007)
    assert rows.loc["minkowski", "final_logit_absmax"] == 0.04
    assert pd.isna(rows.loc["gan", "final_logit_gap"])  # its metrics.csv has no logit columns (an older run)


def run_collect(runs, *extra):
    return subprocess.run([sys.executable, "ablate_p.py", "--collect", "--runs", str(runs), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_tables_go_beside_the_runs_and_merge_with_what_is_there(tmp_path):
    """Observed: a sweep rewrote the committed results/toy_table.csv with its one row, and a sweep whose
    runs all failed replaced it with empty rows. Now the tables go to <runs>/results unless --results
    names another folder; rows are merged by run identity, and failed runs never replace good rows."""
    results = tmp_path / "results"
    results.mkdir()
    reading = dict(arch="mlp", clip=0.0, clip_params=None)
    earlier = pd.DataFrame([dict(dataset="grid25", loss="gan", p=None, n_critic=1, **reading, final_modes_mean=18.7,
                                 completed=3, steps=30000),
                            dict(dataset="ring8", loss="gan", p=None, n_critic=1, **reading, final_modes_mean=7.0,
                                 completed=2, steps=100)])
    earlier.to_csv(results / "toy_table.csv", index=False)
    committed = [(f, open(os.path.join(ROOT, "results", f), "rb").read()) for f in sorted(os.listdir(
        os.path.join(ROOT, "results"))) if f.endswith(".csv")]
    fabricate_run(tmp_path / "a", "gan-seed0", "gan", None, 0, "failed")  # the same identity, failed now
    fabricate_run(tmp_path / "a", "minkowski-p4-seed0", "minkowski", 4.0, 0, "completed", final_modes=5)
    assert run_collect(tmp_path / "a").returncode == 0
    assert (tmp_path / "a" / "results" / "toy_table.csv").exists()  # by default beside the runs
    assert run_collect(tmp_path / "a", "--results", str(results)).returncode == 0
    fabricate_run(tmp_path / "b", "minkowski-p4-seed1", "minkowski", 4.0, 1, "completed", final_modes=7)
    assert run_collect(tmp_path / "b", "--results", str(results)).returncode == 0
    table = pd.read_csv(results / "toy_table.csv").set_index(["dataset", "loss"])
    assert table.loc[("grid25", "gan"), "final_modes_mean"] == 18.7  # untouched by these sweeps
    assert table.loc[("ring8", "gan"), "final_modes_mean"] == 7.0  # its runs failed: the good row stays
    mink = table.loc[("ring8", "minkowski")]
    assert (mink["final_modes_mean"], mink["seeds"]) == (6.0, 2)  # both sweeps' seeds, from runs.csv
    assert len(table) == 3
    runs = pd.read_csv(results / "runs.csv")
    assert sorted(runs["run"]) == ["ring8/gan-seed0", "ring8/minkowski-p4-seed0", "ring8/minkowski-p4-seed1"]
    assert committed == [(f, open(os.path.join(ROOT, "results", f), "rb").read()) for f, _ in committed]


def test_runs_with_another_adam_eps_are_kept_apart_from_the_loss_seeds(tmp_path):
    """An optimiser experiment (p = 8 with Adam eps 1e-12) gets its own run name and runs.csv row and
    stays out of the tables, where it would otherwise be averaged with the default runs of p = 8."""
    args, passthrough = args_for(["--p", "8", "--adam-eps", "1e-12"])
    assert [name for name, _, _ in ablate_p.plan(args, passthrough)] == ["cifar10/minkowski-p8-eps1e-12-seed0"]
    for seed, fid in enumerate([300.0, 320.0]):
        fabricate_run(tmp_path / "runs", f"minkowski-p8-seed{seed}", "minkowski", 8.0, seed, "completed",
                      dataset="cifar10", final_fid=fid, best_fid=fid)
    fabricate_run(tmp_path / "runs", "minkowski-p8-eps1e-12-seed0", "minkowski", 8.0, 0, "completed",
                  dataset="cifar10", final_fid=200.0, best_fid=200.0, adam_eps=1e-12)
    collect.write_tables(collect.collect_rows(str(tmp_path / "runs")), str(tmp_path / "results"))
    runs = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert sorted(zip(runs["final_fid"], runs["adam_eps"].fillna(0))) == [(200.0, 1e-12), (300.0, 0), (320.0, 0)]
    p8 = pd.read_csv(tmp_path / "results" / "table3.csv").set_index("p").loc[8]
    assert (p8["fid_mean"], p8["seeds"]) == (310.0, 2)


def test_two_readings_of_the_papers_clipping_are_two_runs_and_two_table_rows(tmp_path):
    """The paper's "weights clipped to [-0.01, 0.01]" read as every D parameter (the default) or as conv
    and linear weights only: one loss and seed under both are two runs, with two names, two runs.csv
    rows and two table rows, never one mean."""
    args, passthrough = args_for(["--losses", "gan", "--clip-params", "weights"])
    assert [name for name, _, _ in ablate_p.plan(args, passthrough)] == ["cifar10/gan-clipweights-seed0"]
    args, passthrough = args_for(["--dataset", "ring8", "--losses", "gan", "wgan", "--clip", "0.01"])
    assert [n for n, _, _ in ablate_p.plan(args, passthrough)] == ["ring8/gan-clip0.01-seed0", "ring8/wgan-seed0"]
    for name, clip_params, fid in (("gan-seed0", "all", 150.0), ("gan-clipweights-seed0", "weights", 250.0)):
        fabricate_run(tmp_path / "runs", name, "gan", None, 0, "completed", dataset="cifar10", final_fid=fid,
                      best_fid=fid, arch="dcgan", clip=0.01, clip_params=clip_params)
    collect.write_tables(collect.collect_rows(str(tmp_path / "runs")), str(tmp_path / "results"))
    runs = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert sorted(zip(runs["clip_params"], runs["final_fid"])) == [("all", 150.0), ("weights", 250.0)]
    gan = pd.read_csv(tmp_path / "results" / "table2.csv").query("loss == 'gan'").set_index("clip_params")
    assert (gan.loc["all", "fid_mean"], gan.loc["weights", "fid_mean"]) == (150.0, 250.0)
    assert "--clip-params weights" in gan.loc["weights", "note"] and "--clip-params" not in gan.loc["all", "note"]


def test_figures_showing_runs_of_another_folder_are_kept(tmp_path):
    """Collecting a second folder into the same results must not redraw the figures with its runs alone."""
    fabricate_run(tmp_path / "a", "gan-seed0", "gan", None, 0, "completed", final_modes=8)
    fabricate_run(tmp_path / "b", "gan-seed1", "gan", None, 1, "completed", final_modes=6)
    results = tmp_path / "results"
    assert run_collect(tmp_path / "a", "--results", str(results)).returncode == 0
    figure = results / "figures" / "ring8-losses.png"
    drawn = figure.read_bytes()
    proc = run_collect(tmp_path / "b", "--results", str(results))
    assert proc.returncode == 0 and "kept the ring8- figures" in proc.stdout
    assert figure.read_bytes() == drawn and len(pd.read_csv(results / "runs.csv")) == 2
    fabricate_run(tmp_path / "b", "gan-seed0", "gan", None, 0, "completed", final_modes=8)  # now b holds both
    proc = run_collect(tmp_path / "b", "--results", str(results))
    assert proc.returncode == 0 and "kept" not in proc.stdout and "ring8-losses.png" in proc.stdout
    fabricate_run(tmp_path / "c", "gan-seed0", "gan", None, 0, "completed", final_modes=8, total_steps=200, step=200)
    fabricate_run(tmp_path / "c", "gan-seed1", "gan", None, 1, "completed", final_modes=6, total_steps=200, step=200)
    proc = run_collect(tmp_path / "c", "--results", str(results))  # the same names, twice the steps: other runs
    assert proc.returncode == 0 and "kept the ring8- figures" in proc.stdout and "(100 steps)" in proc.stdout
    assert len(pd.read_csv(results / "runs.csv")) == 4


def test_collect_keeps_the_logs_of_completed_runs_for_figures(tmp_path):
    """Run folders stayed on the machine that trained them, so the curves of runs collected in an
    earlier session could not be drawn again. Collecting now copies each completed run's logs to
    <results>/run_logs/<dataset>-<steps>steps/<run>; analysis/figures.py reads them as it reads the runs."""
    fabricate_run(tmp_path / "a", "gan-seed0", "gan", None, 0, "completed", final_modes=8)
    fabricate_run(tmp_path / "a", "minkowski-p4-seed0", "minkowski", 4.0, 0, "completed", final_modes=7)
    fabricate_run(tmp_path / "a", "minkowski-p8-seed0", "minkowski", 8.0, 0, "diverged", final_modes=1)
    results = tmp_path / "results"
    assert run_collect(tmp_path / "a", "--results", str(results)).returncode == 0
    logs = results / "run_logs" / "ring8-100steps"
    assert sorted(os.listdir(logs)) == ["gan-seed0", "minkowski-p4-seed0"]  # the diverged run is not kept
    assert not (logs / "gan-seed0" / "samples").exists()  # 170 kB a grid: the figures of the collect show them
    for f in ["config.json", "summary.json", "metrics.csv"]:
        assert (logs / "gan-seed0" / f).read_bytes() == (tmp_path / "a" / "ring8" / "gan-seed0" / f).read_bytes()
    mirrored, original = figures.load_runs(str(logs)), figures.load_runs(str(tmp_path / "a" / "ring8"))
    assert [(cfg, m.values.tolist()) for cfg, m, _, _ in mirrored] == \
        [(cfg, m.values.tolist()) for cfg, m, _, _ in original if cfg["p"] != 8]
    drawn = [os.path.basename(f) for f in figures.make_figures(str(logs), str(tmp_path / "figs"), prefix="ring8-")]
    assert drawn[:2] == ["ring8-grad_norm_d.png", "ring8-losses.png"] and "ring8-samples.png" not in drawn

    fabricate_run(tmp_path / "b", "gan-seed0", "gan", None, 0, "diverged", final_modes=1)
    fabricate_run(tmp_path / "b", "minkowski-p4-seed0", "minkowski", 4.0, 0, "completed", final_modes=5,
                  total_steps=200, step=200)
    assert run_collect(tmp_path / "b", "--results", str(results)).returncode == 0
    assert json.loads((logs / "gan-seed0" / "summary.json").read_text())["status"] == "completed"  # kept
    assert json.loads((logs / "minkowski-p4-seed0" / "summary.json").read_text())["final_modes"] == 7
    other_budget = results / "run_logs" / "ring8-200steps" / "minkowski-p4-seed0" / "summary.json"
    assert json.loads(other_budget.read_text())["final_modes"] == 5


def test_collect_keeps_the_column_order_of_an_existing_runs_csv(tmp_path):
    """Observed: --collect rewrote runs.csv in its own column order, so every committed line changed in
    a diff. The file's order is kept; a new column goes at the end."""
    fabricate_run(tmp_path / "runs", "gan-seed0", "gan", None, 0, "completed", final_modes=8)
    assert run_collect(tmp_path / "runs", "--results", str(tmp_path / "results")).returncode == 0
    path = tmp_path / "results" / "runs.csv"
    table = pd.read_csv(path)
    table[list(reversed(table.columns.drop("final_modes")))].to_csv(path, index=False)  # as an older collect wrote it
    before = path.read_text().splitlines()
    fabricate_run(tmp_path / "runs", "gan-seed1", "gan", None, 1, "completed", final_modes=7)
    assert run_collect(tmp_path / "runs", "--results", str(tmp_path / "results")).returncode == 0
    after = path.read_text().splitlines()
    assert after[0] == before[0] + ",final_modes" and len(after) == 3


def test_a_float32_final_fid_adds_no_precision_column_and_a_bfloat16_one_is_read_as_words(tmp_path):
    """Observed: a run of today's train.py brought final_fid_precision 'float32' into runs.csv: a new
    column, so every committed line changed, and a cell that readers refused as 'not a number'. Empty
    for float32, as `precision` is; a bfloat16 Inception's FID is named and kept out of the means."""
    fabricate_run(tmp_path, "gan-seed0", "gan", None, 0, "completed", final_fid=80.0, final_fid_precision="float32")
    assert "final_fid_precision" not in collect.collect_rows(str(tmp_path))
    fabricate_run(tmp_path, "gan-seed1", "gan", None, 1, "completed", final_fid=79.0, final_fid_precision="bfloat16")
    rows = collect.collect_rows(str(tmp_path))
    assert rows["final_fid_precision"].fillna("").tolist() == ["", "bfloat16"]
    rows.to_csv(tmp_path / "runs.csv", index=False)
    from minkgan import runs as runs_csv
    assert runs_csv.comparable(runs_csv.read(str(tmp_path / "runs.csv")))["seed"].tolist() == [0]


def test_a_failed_run_never_replaces_a_completed_one_in_runs_csv(tmp_path):
    fabricate_run(tmp_path / "a", "gan-seed0", "gan", None, 0, "completed", final_modes=8)
    fabricate_run(tmp_path / "b", "gan-seed0", "gan", None, 0, "diverged", final_modes=1)
    for runs in ("a", "b"):
        assert run_collect(tmp_path / runs, "--results", str(tmp_path / "results")).returncode == 0
    runs = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert runs[["status", "final_modes"]].values.tolist() == [["completed", 8]]


def test_a_real_sweep_records_a_failed_run_and_goes_on(tmp_path):
    """Two ring8 runs; one has a corrupt checkpoint and fails; the sweep finishes the other, exits 1."""
    runs = tmp_path / "runs"
    bad = runs / "ring8" / "minkowski-p2-seed0" / "checkpoints"
    bad.mkdir(parents=True)
    (bad / "last.pt").write_bytes(b"garbage")
    cmd = [sys.executable, "ablate_p.py", "--dataset", "ring8", "--p", "2", "4", "--runs", str(runs),
           "--results", str(tmp_path / "results"), "--jobs", "2", "--steps", "30", "--eval-every", "15",
           "--log-every", "10"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "ring8/minkowski-p2-seed0: failed" in proc.stdout and "ring8/minkowski-p4-seed0: completed" in proc.stdout
    assert "did not complete: ring8/minkowski-p2-seed0 (failed: " in proc.stderr  # with train.py's reason:
    assert "config.json is missing or unreadable" in proc.stderr  # a checkpoint without its run's config
    toy = pd.read_csv(tmp_path / "results" / "toy_table.csv")
    assert toy.set_index("p")[["completed", "failed"]].to_dict("index") == {2: {"completed": 0, "failed": 1},
                                                                            4: {"completed": 1, "failed": 0}}
    assert (tmp_path / "results" / "figures" / "ring8-modes_vs_p.png").exists()
    assert (tmp_path / "results" / "figures" / "ring8-regime.png").exists()
    (bad / "last.pt").unlink()  # mend it: the rerun trains only that run and skips the finished one
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "ring8/minkowski-p4-seed0: completed (skipped" in proc.stdout
    assert pd.read_csv(tmp_path / "results" / "toy_table.csv")["completed"].tolist() == [1, 1]


def test_figure_labels_and_run_names_tell_wgan_with_one_critic_step_apart():
    from minkgan import figures

    assert figures.label({"loss": "wgan", "p": 4.0, "n_critic": 1}) == "wgan n_critic=1"
    assert figures.label({"loss": "wgan", "p": 4.0, "n_critic": 5}) == "wgan"
    assert figures.label({"loss": "minkowski", "p": 4.0}) == "minkowski p=4"
    assert figures.order(("minkowski p=2 n_critic=3", None)) == (1, 2.0)
    args, passthrough = args_for(["--losses", "wgan", "minkowski", "--p", "4", "--n-critic", "1"])
    assert [name for name, _, _ in ablate_p.plan(args, passthrough)] == ["cifar10/wgan-ncritic1-seed0",
                                                                         "cifar10/minkowski-p4-seed0"]


SWEEP_STEPS = 1000  # long enough that a run cannot finish between its first logged row and the signal


def start_sweep(tmp_path, *extra):
    cmd = [sys.executable, "ablate_p.py", "--dataset", "ring8", "--p", "2", "4", "--runs", str(tmp_path / "runs"),
           "--jobs", "1", "--steps", str(SWEEP_STEPS), "--eval-every", "0", "--log-every", "10", "--ckpt-every", "100000",
           "--fused", "off", *extra]
    return cmd, subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_training(run_dir, timeout=300):
    """The PID of the train.py that holds run_dir, once it has logged a row."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(os.path.join(run_dir, "metrics.csv")) and len(open(os.path.join(run_dir, "metrics.csv")).readlines()) > 1:
            return int(open(os.path.join(run_dir, "train.lock")).read())
        time.sleep(0.1)
    pytest.fail(f"{run_dir} did not start training")


def assert_each_run_resumed_once(tmp_path, cmd):
    """Rerunning the sweep finishes every run; each log holds one start and one resume, one completion."""
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    for name in ("minkowski-p2-seed0", "minkowski-p4-seed0"):
        log = open(tmp_path / "runs" / "logs" / "ring8" / f"{name}.log").read()
        assert log.count(f"completed {SWEEP_STEPS} steps") == 1, log
        metrics = pd.read_csv(tmp_path / "runs" / "ring8" / name / "metrics.csv")
        assert metrics["step"].tolist() == list(range(10, SWEEP_STEPS + 1, 10))  # resumed, not restarted or doubled


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopping_a_sweep_stops_its_runs_and_starts_no_new_one(signum, tmp_path):
    """Observed: after Ctrl-C the sweep started the next queued run, trained it and ended in a traceback."""
    cmd, sweep = start_sweep(tmp_path)
    first = tmp_path / "runs" / "ring8" / "minkowski-p2-seed0"
    wait_for_training(first)
    sweep.send_signal(signum)
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 130 and err.count("\n") == 1 and "sweep stopped" in err, err
    assert json.load(open(first / "summary.json"))["status"] == "interrupted"
    assert not (tmp_path / "runs" / "ring8" / "minkowski-p4-seed0").exists()  # never started
    if signum == signal.SIGTERM:
        assert_each_run_resumed_once(tmp_path, cmd)


def test_a_killed_sweep_takes_its_runs_with_it(tmp_path):
    """Observed: kill -9 of the sweep left its train.py children training as orphans, and a rerun
    trained the same run directories a second time at once."""
    cmd, sweep = start_sweep(tmp_path)
    first = tmp_path / "runs" / "ring8" / "minkowski-p2-seed0"
    child = wait_for_training(first)
    sweep.kill()
    sweep.wait()
    deadline = time.time() + 120
    while os.path.exists(f"/proc/{child}") and open(f"/proc/{child}/stat").read().split()[2] != "Z":
        assert time.time() < deadline, "the run outlived its sweep"
        time.sleep(0.1)
    assert json.load(open(first / "summary.json"))["status"] == "interrupted"  # it checkpointed on the way out
    assert_each_run_resumed_once(tmp_path, cmd)


def test_paper_tables_keep_wgan_with_one_critic_step_apart_from_the_papers_wgan(tmp_path):
    for n_critic, steps, fid in [(5, 313, 200.0), (1, 1562, 150.0)]:
        for seed in (0, 1):
            fabricate_run(tmp_path / "runs", f"wgan-nc{n_critic}-seed{seed}", "wgan", 4.0, seed, "completed",
                          dataset="cifar10", final_fid=fid + seed, best_fid=fid, final_kid=0.1, n_critic=n_critic,
                          step=steps, total_steps=steps)
    table2, _ = collect.paper_tables(collect.collect_rows(str(tmp_path / "runs")))
    wgan = table2[table2["loss"] == "wgan"].set_index("n_critic")
    assert wgan.loc[5, "paper_fid"] == 210.3 and pd.isna(wgan.loc[1, "paper_fid"])
    assert (wgan.loc[5, "fid_mean"], wgan.loc[1, "fid_mean"]) == (200.5, 150.5)


def test_a_run_another_process_is_training_is_collected_as_running(tmp_path):
    """Seen on a real Slurm: the array task that finished first collected the other task's run,
    still training, as failed."""
    fabricate_run(tmp_path, "gan-seed0", "gan", None, 0, "completed")
    run_dir = str(tmp_path / "ring8" / "gan-seed0")
    os.remove(os.path.join(run_dir, "summary.json"))  # under way: no summary yet
    with rundir.locked(run_dir):
        assert collect.collect_rows(str(tmp_path))["status"].tolist() == ["running"]
    assert collect.collect_rows(str(tmp_path))["status"].tolist() == ["failed"]  # no process: it died


def ring8_gan(table, clip):
    return (table["dataset"] == "ring8") & (table["loss"] == "gan") & (table["clip"] == clip)


def test_a_rerun_of_a_committed_toy_row_replaces_it_instead_of_adding_one(tmp_path):
    """The committed toy table predates the n_critic column; its rows must keep matching new ones,
    and the other reading's row (every D parameter clipped) must stay as it is."""
    path = str(tmp_path / "toy_table.csv")
    committed = pd.read_csv(os.path.join(ROOT, "results", "toy_table.csv"))
    committed.to_csv(path, index=False)
    row = committed[ring8_gan(committed, 0.0)].copy()
    row["final_modes_mean"] = 8.0
    collect.merge_toy_table(row, path)
    merged = pd.read_csv(path)
    assert len(merged) == len(committed)
    assert merged.loc[ring8_gan(merged, 0.0), "final_modes_mean"].tolist() == [8.0]
    assert merged.loc[ring8_gan(merged, 0.01), "final_modes_mean"].tolist() == \
        committed.loc[ring8_gan(committed, 0.01), "final_modes_mean"].tolist()


def test_figures_showing_2d_groups_that_runs_csv_lacks_are_kept(tmp_path):
    """toy_table.csv can hold groups whose runs never reached runs.csv (collected before it held 2-D
    rows, from a folder gone with its machine): a second reading's runs must not redraw their figures."""
    fabricate_run(tmp_path / "a", "gan-seed0", "gan", None, 0, "completed", final_modes=8)
    results = tmp_path / "results"
    assert run_collect(tmp_path / "a", "--results", str(results)).returncode == 0
    pd.read_csv(results / "runs.csv").iloc[0:0].to_csv(results / "runs.csv", index=False)  # the table's runs unknown
    figure = results / "figures" / "ring8-losses.png"
    drawn = figure.read_bytes()
    fabricate_run(tmp_path / "b", "gan-clip0.01-seed0", "gan", None, 0, "completed", final_modes=2, clip=0.01)
    proc = run_collect(tmp_path / "b", "--results", str(results))
    assert proc.returncode == 0 and "the gan group of toy_table.csv" in proc.stdout
    assert figure.read_bytes() == drawn and len(pd.read_csv(results / "toy_table.csv")) == 2


def stalled_metrics(run_dir, late_grad):
    """A 1562-step run's metrics.csv, G's gradient norm 1 early and late_grad over the last quarter."""
    steps = np.arange(50, 1563, 50)
    pd.DataFrame({"step": steps, "loss_d": 1.0, "loss_g": 1.0, "grad_norm_d": 1.0, "logit_real": 0.0, "logit_fake": 0.0,
                  "logit_absmax": 1.0, "grad_norm_g": np.where(steps > 1171.5, late_grad, 1.0)}).to_csv(
        os.path.join(run_dir, "metrics.csv"), index=False)


def test_runs_csv_says_which_image_runs_failed_by_the_preregistered_rule(tmp_path):
    for name, loss, p, late in [("minkowski-p4-seed0", "minkowski", 4.0, 0.009), ("gan-seed0", "gan", None, 0.011)]:
        fabricate_run(tmp_path, name, loss, p, 0, "completed", dataset="folder", final_fid=300.0, total_steps=1562, step=1562)
        stalled_metrics(os.path.join(tmp_path, "folder", name), late)
    fabricate_run(tmp_path, "wgan-seed0", "wgan", None, 0, "diverged", dataset="folder", total_steps=1562)
    rows = collect.collect_rows(str(tmp_path)).set_index("loss")
    assert rows.loc["minkowski", "failed"] == "yes" and rows.loc["gan", "failed"] == "no"
    assert rows.loc["wgan", "failed"] == "yes"  # a diverged run counts as failed
    assert rows.loc["minkowski", "grad_g_late"] == pytest.approx(0.009) and rows.loc["gan", "grad_g_early"] == 1.0


def test_runs_collected_before_the_rule_get_their_failure_from_the_run_logs(tmp_path):
    """The committed rows had no failed column: a collect into results/ fills it from run_logs/, for the
    run of that name, seed and reading only; a row without a copy stays empty."""
    fabricate_run(tmp_path / "old", "minkowski-p4-seed0", "minkowski", 4.0, 0, "completed", dataset="folder",
                  final_fid=300.0, best_fid=300.0, total_steps=1562, step=1562)
    stalled_metrics(os.path.join(tmp_path, "old", "folder", "minkowski-p4-seed0"), 0.001)
    results = tmp_path / "results"
    assert run_collect(tmp_path / "old", "--results", str(results)).returncode == 0
    runs_csv = results / "runs.csv"
    table = pd.read_csv(runs_csv)
    old = table.drop(columns=failure.FAILURE_COLUMNS)
    old = pd.concat([old, old.assign(run="folder/gan-seed3", loss="gan", p=None, seed=3)])  # a row with no copy
    old.to_csv(runs_csv, index=False)
    fabricate_run(tmp_path / "new", "gan-seed1", "gan", None, 1, "completed", dataset="folder", final_fid=250.0,
                  best_fid=250.0, total_steps=1562, step=1562)
    stalled_metrics(os.path.join(tmp_path, "new", "folder", "gan-seed1"), 0.5)
    assert run_collect(tmp_path / "new", "--results", str(results)).returncode == 0
    table = pd.read_csv(runs_csv).set_index("run")
    assert table.loc["folder/minkowski-p4-seed0", "failed"] == "yes" and table.loc["folder/gan-seed1", "failed"] == "no"
    assert pd.isna(table.loc["folder/gan-seed3", "failed"])
    grid = results / "run_logs" / "folder-1562steps" / "gan-seed1" / "step0000100.png"
    assert grid.is_file()  # an image run's log keeps its final sample grid
