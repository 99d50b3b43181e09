"""gpu/gpu_check.sh where there is no GPU: `--cpu` runs its steps on the CPU at smoke size (a few
minutes), with the outputs a GPU run brings back, and a failed step shows in the report and the
exit code."""
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
import torch

from gpu import gpu_check

from layout import ROOT  # noqa: E402
STEPS = ["environment", "build", "cuda-tests", "edge-cases", "train-resume", "bench-step", "throughput",
         "memcheck", "racecheck"]


def report_rows(report):
    """step -> (status, exit code) from report.txt's table."""
    rows = {}
    for line in report.splitlines():
        fields = line.split()
        if fields and fields[0] in STEPS:
            rows[fields[0]] = (fields[1], fields[2])
    return rows


def test_cpu_mode_runs_every_step_brings_back_its_files_and_reports_a_failed_step(tmp_path):
    """The environment step is made to fail (a PYTHON that refuses it, exit code 3): the report and the
    exit code show it, and every other step still runs and passes."""
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nif [ "$1 $2 $3" = "-m gpu.gpu_check environment" ]; then echo "planted failure" >&2; exit 3; fi\n'
                      f'exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    out = tmp_path / "out"
    r = subprocess.run(["bash", "gpu/gpu_check.sh", "--cpu"], cwd=ROOT, capture_output=True, text=True, timeout=1800,
                       env=dict(os.environ, OUT=str(out), PYTHON=str(python)))
    report = (out / "report.txt").read_text()
    assert r.returncode == 1, report
    rows = report_rows(report)
    assert rows["environment"] == ("FAIL", "3") and "planted failure" in report
    assert all(rows[s] == ("ok", "0") for s in STEPS[1:-2]), report
    assert rows["memcheck"][0] == rows["racecheck"][0] == "skipped"
    assert "1 step(s) failed: environment" in report
    assert sorted(p.name for p in out.iterdir()) == ["bench_step.csv", "junit.xml", "logs.tar.gz", "report.txt",
                                                     "throughput.csv"]  # files only, at most 8
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) > 5 and suite.get("failures") == suite.get("errors") == "0"
    bench = pd.read_csv(out / "bench_step.csv")
    assert list(bench["variant"]) == ["plain", "fused"] and (bench["ms"] > 0).all() and (bench["aten_ops"] > 100).all()
    throughput = pd.read_csv(out / "throughput.csv")
    assert sorted(throughput["concurrent"]) == [1, 4, 4, 4, 4] and (throughput["steps_per_s"] > 0).all()
    with tarfile.open(out / "logs.tar.gz") as archive:
        names = archive.getnames()
    assert {f"logs/{s}.log" for s in STEPS[:-2]} <= set(names)
    assert {"runs/straight/metrics.csv", "runs/straight/eval.csv", "runs/resumed/config.json"} <= set(names)
    assert not any("checkpoints" in n for n in names)


@pytest.mark.parametrize("args, out, message", [(["--gpu"], "", "unknown argument --gpu"), ([], "", "is not empty"),
                                                 ([], "old.txt", "is a file, not a folder")])
def test_bad_usage_is_a_one_line_error(tmp_path, args, out, message):
    """Observed: OUT= an empty file was called "not empty"."""
    (tmp_path / "old.txt").write_text("")
    r = subprocess.run(["bash", "gpu/gpu_check.sh", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, OUT=str(tmp_path / out)))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == ["old.txt"] and (tmp_path / "old.txt").read_text() == ""


def test_same_run_tells_identical_runs_from_different_ones(tmp_path, capsys):
    state = {"step": 4, "G": {"w": torch.ones(3)}, "D": {"w": torch.zeros(2)}, "opt_g": {"state": {}}, "opt_d": {},
             "rng": torch.arange(5, dtype=torch.uint8), "cuda_rng": None}
    for name, tweak in (("a", 0.0), ("b", 0.0), ("c", 1e-7)):
        os.makedirs(tmp_path / name / "checkpoints")
        torch.save({**state, "G": {"w": torch.ones(3) + tweak}}, tmp_path / name / "checkpoints" / "last.pt")
    assert gpu_check.same_run(tmp_path / "a", tmp_path / "b") == 0
    assert gpu_check.same_run(tmp_path / "a", tmp_path / "c") == 1
    assert "differ: G" in capsys.readouterr().out


def test_edge_cases_fail_on_a_wrong_op(monkeypatch, capsys):
    """The edge cases compare with eager: a fused loss 1% off fails them."""
    from minkgan import ops
    ops.set_backend("on")
    real = gpu_check.mink
    monkeypatch.setattr(gpu_check, "mink", lambda x, t, p=3.0: 1.01 * real(x, t, p))
    monkeypatch.setattr(gpu_check, "CASES", {k: gpu_check.CASES[k] for k in ("non-contiguous", "half")})
    assert gpu_check.edge_cases(torch.device("cpu")) == 1
    out = capsys.readouterr().out
    assert "FAIL non-contiguous" in out and "FAIL half" in out
