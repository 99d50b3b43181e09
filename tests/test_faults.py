"""Every script against unusable paths and a full disk: one `error:` line, exit code 2 for a bad path
(before anything is written: nothing created or changed) and 1 for a write that fails (the last good
checkpoint kept), never a traceback. A new script gets its rows in CASES (test_every_script_is_tried)."""
import glob
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
import zlib

import pandas as pd
import pytest
import torch


from minkgan import collect
import layout
from minkgan import utils
from minkgan.utils import run_main

from layout import ROOT
RUN, RUNS, RUNS_CSV = "{run}", "{runs}", "{runs_csv}"
TRAJECTORIES = ["--dataset", "ring8", "--steps", "1", "--every", "1", "--n-images", "4", "--losses", "wgan", "gan"]
SWEEP = ["--dataset", "ring8", "--p", "4", "--steps", "2", "--eval-every", "0", "--fused", "off"]

# (script, argv, words of the one-line error). {folder} is a folder, {file} a file of the user's,
# {binary} a binary file, {empty} an empty one, {theirs} someone else's CSV (name,score), {ro} a read-only folder.
CASES = [
    ("train.py", ["--dataset", "ring8", "--out", "{file}"], "--out"),
    ("train.py", ["--dataset", "ring8", "--out", "{file}/run"], "is a file"),
    ("train.py", ["--dataset", "ring8", "--out", "{dangling}"], "is a dangling symlink"),
    ("train.py", ["--dataset", "ring8", "--out", "{dangling}/run"], "is a dangling symlink"),
    ("train.py", ["--dataset", "ring8", "--out", "{ro}/run"], "read-only"),
    ("train.py", ["--dataset", "folder", "--data-root", "{folder}/none", "--out", "{folder}/run"], "does not exist"),
    ("train.py", ["--dataset", "folder", "--data-root", "{images}", "--eval-every", "10", "--fid-weights",
                  "/nonexistent/w.pth", "--out", "{folder}/run"], "--fid-weights"),
    ("train.py", ["--dataset", "folder", "--data-root", "{bomb}", "--out", "{folder}/run"],
     "huge.png claims 40000x40000 pixels"),
    ("train.py", ["--dataset", "ring8", "--lr", "-1", "--out", "{folder}/run"], "--lr must"),
    ("train.py", ["--dataset", "ring8", "--p", "1e6", "--out", "{folder}/run"], "use 1 <= --p <= 50"),
    ("train.py", ["--dataset", "ring8", "--loss", "wgan-gp", "--gp-center", "nan", "--out", "{folder}/run"],
     "--gp-center must be a finite number, got nan"),
    ("train.py", ["--dataset", "ring8", "--gp-center", "inf", "--out", "{folder}/run"], "--gp-center must be a finite"),
    ("train.py", ["--dataset", "ring8", "--beta1", "1.5", "--out", "{folder}/run"],
     "--beta1 must be in [0, 1), got 1.5"),
    ("train.py", ["--dataset", "ring8", "--beta1", "nan", "--out", "{folder}/run"],
     "--beta1 must be in [0, 1), got nan"),
    ("train.py", ["--dataset", "ring8", "--beta2", "-0.5", "--out", "{folder}/run"], "--beta2 must be in [0, 1)"),
    ("train.py", ["--dataset", "ring8", "--seed", "99999999999999999999", "--out", "{folder}/run"],
     "--seed must be an integer from 0 to 4294967295"),
    ("train.py", ["--dataset", "ring8", "--device", "meta", "--out", "{folder}/run"], "--device meta cannot train"),
    ("train.py", ["--dataset", "ring8", "--device", "mps", "--out", "{folder}/run"], "--device mps cannot train"),
    ("train.py", ["--dataset", "ring8", "--loss", "gan", "--steps", "10", "--resume", "--out", "{done}"],
     "holds a completed run but no checkpoint to resume from"),
    ("train.py", ["--dataset", "ring8", "--steps", "2", "--resume", "--out", "{done}"],
     "holds a completed run but no checkpoint to resume from"),
    ("train.py", ["--dataset", "ring8", "--precision", "float16", "--out", "{folder}/run"], "--precision"),
    ("train.py", ["--dataset", "folder", "--data-root", "{images}", "--eval-every", "10", "--eval-n", "400",
                  "--fid-weights", "random", "--out", "{folder}/run"], "--eval-n 400 is more than the 40 images"),
    ("train.py", ["--dataset", "folder", "--data-root", "{images}", "--eval-every", "10", "--fid-precision", "half",
                  "--out", "{folder}/run"], "--fid-precision"),
    ("evaluate.py", [RUN, "--fid-precision", "float16", "--csv", "{folder}/fid.csv"], "--fid-precision"),
    ("evaluate.py", [RUN, "--csv", "{folder}"], "is a folder"),
    ("evaluate.py", [RUN, "--seed", "-1", "--csv", "{folder}/fid.csv"], "--seed must be an integer from 0 to"),
    ("evaluate.py", [RUN, "--noise-seed", "99999999999999999999", "--csv", "{folder}/fid.csv"],
     "--noise-seed must be an integer from 0 to"),
    ("evaluate.py", [RUN, "--csv", "{binary}"], "binary"),
    ("evaluate.py", [RUN, "--csv", "{theirs}"], "no column run, checkpoint, steps, n_fake"),
    ("evaluate.py", [RUN, "--csv", "{file}/fid.csv"], "is a file"),
    ("evaluate.py", [RUN, "--csv", "{ro}/fid.csv"], "read-only"),
    ("evaluate.py", ["--table", "--csv", "{binary}"], "binary"),
    ("evaluate.py", ["--table", "--csv", "{empty}"], "is empty; evaluate some runs into it first"),
    ("evaluate.py", ["--table", "--csv", "{fid_csv}", "--table-dir", "{file}"], "--table-dir"),
    ("evaluate.py", ["--table", "--csv", "{fid_csv}", "--table-dir", "{theirs_folder}"], "no column loss"),
    ("ablate_p.py", ["--collect", "--runs", RUNS, "--results", "{theirs_folder}"], "runs.csv is not a CSV"),
    ("ablate_p.py", ["--collect", "--runs", RUNS, "--results", "{binary_folder}"], "binary"),
    ("ablate_p.py", ["--collect", "--runs", RUNS, "--results", "{file}"], "--results"),
    ("ablate_p.py", ["--collect", "--runs", RUNS, "--results", "{ro}/results"], "read-only"),
    ("ablate_p.py", [*SWEEP, "--runs", "{file}"], "--runs"),
    ("ablate_p.py", [*SWEEP, "--beta1", "1.5", "--runs", "{folder}/sweep"], "--beta1 must be in [0, 1)"),
    ("ablate_p.py", [*SWEEP, "--beta2", "nan", "--runs", "{folder}/sweep"], "--beta2 must be in [0, 1)"),
    ("ablate_p.py", [*SWEEP, "--p", "4", "1e6", "--runs", "{folder}/sweep"], "use 1 <= --p <= 50"),
    ("ablate_p.py", [*SWEEP, "--seeds", "0", "99999999999999999999", "--runs", "{folder}/sweep"],
     "--seeds must be integers from 0 to 4294967295"),
    ("ablate_p.py", [*SWEEP, "--runs", "{ro}/sweep"], "read-only"),
    ("ablate_p.py", [*SWEEP, "--runs", "{folder}/sweep", "--results", "{theirs_folder}"], "runs.csv is not a CSV"),
    ("analysis/p_effect.py", [RUNS_CSV, "--csv", "{folder}"], "is a folder"),
    ("analysis/p_effect.py", [RUNS_CSV, "--csv", "{binary}"], "binary"),
    ("analysis/p_effect.py", [RUNS_CSV, "--csv", "{theirs}"], "no column metric"),
    ("analysis/p_effect.py", [RUNS_CSV, "--csv", "{ro}/p.csv"], "read-only"),
    ("analysis/p_effect.py", [RUNS_CSV, "--figure", "{folder}"], "--figure"),
    ("analysis/p_effect.py", [RUNS_CSV, "--figure", "{file}/p.png"], "is a file"),
    ("analysis/p_effect.py", ["{binary}"], "binary"),
    ("analysis/alignment.py", [RUN, "--csv", "{folder}"], "is a folder"),
    ("analysis/alignment.py", [RUN, "--csv", "{binary}"], "binary"),
    ("analysis/alignment.py", [RUN, "--csv", "{theirs}"], "no column run"),
    ("analysis/alignment.py", [RUN, "--csv", "{ro}/a.csv"], "read-only"),
    ("analysis/alignment.py", [RUN, "--figure", "{file}/a.png"], "is a file"),
    ("analysis/trajectories.py", [*TRAJECTORIES, "--csv", "{folder}"], "is a folder"),
    ("analysis/trajectories.py", [*TRAJECTORIES, "--csv", "{binary}"], "binary"),
    ("analysis/trajectories.py", [*TRAJECTORIES, "--csv", "{theirs}"], "no column step"),
    ("analysis/trajectories.py", [*TRAJECTORIES, "--csv", "{ro}/t.csv"], "read-only"),
    ("analysis/trajectories.py", [*TRAJECTORIES, "--csv", "{folder}/t.csv", "--figure", "{folder}"], "--figure"),
    ("analysis/figures.py", ["{runs}/ring8", "--out", "{file}"], "--out"),
    ("analysis/figures.py", ["{runs}/ring8", "--out", "{file}/figures"], "is a file"),
    ("analysis/figures.py", ["{runs}/ring8", "--out", "{ro}/figures"], "read-only"),
    ("analysis/dynamics.py", ["bilinear", "--out", "{file}"], "--out"),
    ("analysis/dynamics.py", ["bilinear", "--out", "{file}/dynamics"], "is a file"),
    ("analysis/dynamics.py", ["bilinear", "--out", "{ro}/dynamics"], "read-only"),
    ("analysis/contrasts.py", [RUNS_CSV, "--csv", "{folder}"], "is a folder"),
    ("analysis/contrasts.py", [RUNS_CSV, "--csv", "{theirs}"], "no column reading"),
    ("analysis/contrasts.py", [RUNS_CSV, "--figure", "{file}/c.png"], "is a file"),
    ("analysis/contrasts.py", ["{binary}"], "binary"),
    ("analysis/stability.py", ["{runs}/ring8", "--csv", "{binary}"], "binary"),
    ("analysis/stability.py", ["{runs}/ring8", "--csv", "{ro}/s.csv"], "read-only"),
    ("analysis/horizon.py", ["{runs}/ring8", "--csv", "{theirs}"], "no column run"),
    ("analysis/horizon.py", ["{runs}/ring8", "--fit-csv", "{folder}"], "is a folder"),
    ("analysis/horizon.py", ["{runs}/ring8", "--figure", "{file}/h.png"], "is a file"),
    ("analysis/horizon.py", ["{runs}/ring8", "--final-csv", "{binary}"], "binary"),
    ("analysis/moments.py", [RUN, "--csv", "{folder}"], "is a folder"),
    ("analysis/moments.py", [RUN, "--csv", "{ro}/m.csv"], "read-only"),
    ("analysis/failures.py", [RUNS_CSV, "--csv", "{folder}"], "is a folder"),
    ("analysis/failures.py", [RUNS_CSV, "--csv", "{theirs}"], "no column reading"),
    ("analysis/failures.py", [RUNS_CSV, "--figure", "{file}/f.png"], "is a file"),
    ("analysis/failures.py", ["{binary}"], "binary"),
    ("analysis/fid_precision.py", ["--real-root", "{images}", "--fake-root", "{images}", "--csv", "{folder}"],
     "is a folder"),
    ("analysis/fid_precision.py", ["--real-root", "{images}", "--fake-root", "{images}", "--csv", "{theirs}"],
     "no column n"),
    ("analysis/fid_precision.py", ["--real-root", "{images}", "--fake-root", "{images}", "--n", "8", "--sets", "1", "2"],
     "--n and --sets"),
    ("report.py", ["--results", "{file}"], "not a folder"),
    ("bench/step.py", ["--profile", "--count-only", "--csv", "{folder}/p.csv"], "two modes: pass one"),
    ("bench/step.py", ["--profile", "--variants", "plain", "compile", "--csv", "{folder}/p.csv"],
     "--profile times eager ops only: leave out compile"),
    ("bench/step.py", ["--profile", "--csv", "{theirs}"], "no column device"),
]
# Scripts that write nothing unless told (--csv), after minutes of timing: not tried here beyond the
# refusals that come before any timing.
BENCHMARKS = {"bench/fid.py", "bench/ops.py", "bench/step.py", "analysis/derivations.py"}
# gpu/gpu_check.sh's steps, which it runs with paths of its own under $OUT (tests/gpu/test_gpu_check.py).
DRIVEN = {"gpu/gpu_check.py"}


def invoke(script, argv):
    """A script's command line in-process, as `python script argv` runs it: its exit code."""
    module = importlib.import_module(script[:-3].replace("/", "."))
    with pytest.raises(SystemExit) as done:
        run_main(lambda: module.main(argv))
    return done.value.code


def tree(*roots):
    """Every folder, file and link under roots, files with a hash of their bytes: what must not change."""
    found = {}
    for root in roots:
        for folder, _, files in os.walk(root):
            found[folder] = "folder"
            for name in files:
                path = os.path.join(folder, name)
                if os.path.islink(path):
                    found[path] = f"a link to {os.readlink(path)}"
                    continue
                with open(path, "rb") as f:
                    found[path] = hashlib.sha1(f.read()).hexdigest()
    return found


def png_header(width, height):
    """A small PNG whose header claims width x height: PIL refuses it on opening, before any pixel."""
    def chunk(kind, body):
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """What the commands read, made once: a trained 2-D run with a kept checkpoint in a runs folder,
    a copy of it without its checkpoints (a completed run whose checkpoints were deleted), a runs.csv
    and a fid.csv of ours."""
    root = tmp_path_factory.mktemp("inputs")
    run = root / "runs" / "ring8" / "minkowski-p4-seed0"
    assert invoke("train.py", ["--dataset", "ring8", "--steps", "2", "--save-at", "0", "--log-every", "1",
                               "--fused", "off", "--out", str(run)]) == 0
    done = root / "done" / "minkowski-p4-seed0"
    shutil.copytree(run, done, ignore=shutil.ignore_patterns("checkpoints"))
    bomb = root / "bomb" / "cat"
    bomb.mkdir(parents=True)
    (bomb / "huge.png").write_bytes(png_header(40000, 40000))  # PIL's DecompressionBombError, before any pixel
    runs_csv, fid_csv = root / "runs.csv", root / "fid.csv"
    pd.DataFrame([dict(run=f"folder/minkowski-p{p}-seed{s}", dataset="folder", loss="minkowski", p=p, seed=s,
                       status="completed", steps=10, epochs=1.0, final_fid=100.0 + 10 * p + s, device="cpu")
                  for p in (1, 2) for s in (0, 1)]).to_csv(runs_csv, index=False)
    pd.DataFrame([dict(run="a", dataset="cifar10", loss="gan", p=None, seed=0, steps=5, epochs=1, n_fake=10,
                       n_real=10, fid=50.0, device="cpu")]).to_csv(fid_csv, index=False)
    return {"root": str(root), "run": str(run), "done": str(done), "bomb": str(bomb.parent), "runs": str(root / "runs"),
            "runs_csv": str(runs_csv),
            "fid_csv": str(fid_csv)}


class Places(dict):
    """The bad paths of CASES; {ro} is mounted only for the cases that name it (as root: a read-only
    tmpfs; elsewhere those cases are skipped, with the reason)."""

    def __init__(self, work, tmpfs, **known):
        super().__init__(known)
        self.work, self.tmpfs = work, tmpfs

    def __missing__(self, name):
        if name != "ro":
            raise KeyError(name)
        self["ro"] = self.tmpfs.mount("read-only", 64 * 1024, read_only=True)
        return self["ro"]


@pytest.fixture
def places(tmp_path, tmpfs, inputs, tiny_images, monkeypatch):
    work = tmp_path / "work"
    (work / "folder").mkdir(parents=True)
    (work / "file").write_text("mine\n")
    (work / "binary.csv").write_bytes(bytes(range(256)) * 8)
    (work / "empty.csv").write_text("")
    (work / "theirs.csv").write_text("name,score\na,1\nb,2\n")
    (work / "dangling").symlink_to(work / "gone")
    for name, content in (("theirs_folder", b"name,score\na,1\n"), ("binary_folder", bytes(range(256)))):
        (work / name).mkdir()
        for table in ("runs.csv", "table2.csv"):
            (work / name / table).write_bytes(content)
    monkeypatch.chdir(work)  # what a script writes by default lands here, where it is seen
    paths = {name: str(work / name) for name in ("folder", "file", "theirs_folder", "binary_folder")}
    return Places(str(work), tmpfs, **paths, binary=str(work / "binary.csv"), dangling=str(work / "dangling"),
                  theirs=str(work / "theirs.csv"), empty=str(work / "empty.csv"),
                  images=tiny_images, **inputs)


@pytest.mark.parametrize("script, argv, words", CASES, ids=[f"{c[0]}:{' '.join(c[1][-2:])}" for c in CASES])
def test_a_bad_path_is_one_line_exit_2_and_creates_nothing(script, argv, words, places, capsys):
    argv = [a.format_map(places) for a in argv]
    before = tree(places.work, places["root"])
    code = invoke(script, argv)
    err = capsys.readouterr().err
    assert (code, err.count("\n")) == (2, 1) and err.startswith("error: ") and words in err, err
    assert tree(places.work, places["root"]) == before


def test_every_script_is_tried():
    scripts = set(layout.commands())
    untried = scripts - BENCHMARKS - DRIVEN - {script for script, _, _ in CASES}
    assert not untried, f"give {', '.join(sorted(untried))} rows in CASES: every output path checked before the first write"


# ----------------------------------------------------------------------------- a full disk

TRAIN = ["--dataset", "ring8", "--steps", "4", "--ckpt-every", "2", "--log-every", "1", "--sample-every", "100",
         "--fused", "off"]


@pytest.fixture(scope="module")
def checkpoint_size(tmp_path_factory):
    """The bytes of a checkpoint of TRAIN's runs, measured on an ordinary disk."""
    out = tmp_path_factory.mktemp("measured") / "run"
    assert invoke("train.py", [*TRAIN, "--out", str(out)]) == 0
    return os.path.getsize(out / "checkpoints" / "last.pt")


def test_a_full_disk_stops_a_run_with_one_line_exit_1_and_resume_continues(checkpoint_size, tmpfs, capsys):
    """Observed: train.py on a full disk died with a torch.save RuntimeError traceback. Room for one
    checkpoint and a half: the one at step 2 is written, the one at step 4 cannot be."""
    disk = tmpfs.mount("disk", checkpoint_size * 3 // 2)
    out = os.path.join(disk, "run")
    capsys.readouterr()
    assert invoke("train.py", [*TRAIN, "--out", out]) == 1
    err = capsys.readouterr().err
    last = os.path.join(out, "checkpoints", "last.pt")
    assert err == f"error: cannot write {last} (No space left on device); the last checkpoint is kept: make room, " \
                  f"then --resume continues from it\n"
    assert torch.load(last, weights_only=True)["step"] == 2
    assert not glob.glob(os.path.join(out, "**", ".tmp-*"), recursive=True)  # no half-written file left
    assert pd.read_csv(os.path.join(out, "metrics.csv"))["step"].tolist() == [1, 2, 3, 4]
    tmpfs.resize(disk, checkpoint_size * 4)
    assert invoke("train.py", [*TRAIN, "--out", out, "--resume"]) == 0
    assert json.load(open(os.path.join(out, "summary.json")))["status"] == "completed"
    assert pd.read_csv(os.path.join(out, "metrics.csv"))["step"].tolist() == [1, 2, 3, 4]


def test_a_sweep_on_a_full_disk_records_the_failed_run_and_still_prints_its_summary(checkpoint_size, tmpfs):
    """Observed: a sweep into a 20 MB tmpfs ended in an OSError traceback in mirror_run_logs, its
    summary never printed. Here the run's second checkpoint finds no room, nor do the tables."""
    runs, results = tmpfs.mount("runs", checkpoint_size * 3 // 2), tmpfs.mount("results", 4096)
    cmd = [sys.executable, "ablate_p.py", *SWEEP[:4], "--steps", "4", "--eval-every", "0", "--ckpt-every", "2",
           "--log-every", "1", "--sample-every", "100", "--fused", "off", "--runs", runs, "--results", results]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert "ring8/minkowski-p4-seed0: failed (cannot write" in proc.stdout and "No space left" in proc.stdout
    assert "minkowski" in proc.stdout.splitlines()[-1] and "failed" in proc.stdout.splitlines()[-1]  # the summary
    assert "error: cannot write" in proc.stderr and "(No space left on device)" in proc.stderr
    assert "did not complete: ring8/minkowski-p4-seed0 (failed: cannot write" in proc.stderr
    failed = json.load(open(os.path.join(runs, "ring8", "minkowski-p4-seed0", "failed.json")))
    assert failed["status"] == "failed" and "No space left on device" in failed["error"]


def test_a_run_logs_copy_is_complete_or_absent_on_a_full_disk(tmp_path, tmpfs):
    """Observed: a full disk left a run_logs/ copy with eval.csv and metrics.csv but no config.json."""
    run = tmp_path / "runs" / "ring8" / "gan-seed0"
    run.mkdir(parents=True)
    for name in collect.LOGGED_FILES:
        (run / name).write_text(name * (6000 // len(name)))  # two pages each: eight, more than there is room for
    results = tmpfs.mount("results", 5 * 4096)
    copy = os.path.join(results, "run_logs", "ring8-100steps", "gan-seed0")
    os.makedirs(copy)
    with open(os.path.join(copy, "config.json"), "w") as f:
        f.write("the copy of an earlier collect")
    rows = pd.DataFrame([{"run": "ring8/gan-seed0", "status": "completed", "total_steps": 100}])
    with pytest.raises(utils.WriteError, match="No space left on device"):
        collect.mirror_run_logs(rows, str(tmp_path / "runs"), results)
    assert os.listdir(os.path.dirname(copy)) == ["gan-seed0"]  # no half-made copy beside it
    assert os.listdir(copy) == ["config.json"] and open(os.path.join(copy, "config.json")).read().startswith("the copy")
    tmpfs.resize(results, 1 << 20)
    collect.mirror_run_logs(rows, str(tmp_path / "runs"), results)
    assert sorted(os.listdir(copy)) == sorted(collect.LOGGED_FILES)
    assert all(open(os.path.join(copy, f)).read() == (run / f).read_text() for f in collect.LOGGED_FILES)


FULL_DISK_CASES = [
    ("evaluate.py", [RUN, "--n", "20", "--csv", "{disk}/fid.csv"]),
    ("analysis/p_effect.py", [RUNS_CSV, "--permutations", "10", "--csv", "{disk}/p.csv"]),
    ("analysis/alignment.py", [RUN, "--batch-size", "4", "--csv", "{disk}/a.csv"]),
    ("analysis/trajectories.py", [*TRAJECTORIES, "--csv", "{disk}/t.csv"]),
    ("analysis/figures.py", ["{runs}/ring8", "--out", "{disk}/figures"]),
    ("analysis/dynamics.py", ["bilinear", "--steps", "5", "--out", "{disk}/dynamics"]),
]


@pytest.mark.parametrize("script, argv", FULL_DISK_CASES, ids=[c[0] for c in FULL_DISK_CASES])
def test_a_full_disk_is_one_line_exit_1(script, argv, places, capsys):
    disk = places.tmpfs.mount("full", 4096)
    with open(os.path.join(disk, "filler"), "wb") as f:
        f.write(b"x" * 4096)
    code = invoke(script, [a.format_map({**places, "disk": disk}) for a in argv])
    err = capsys.readouterr().err
    assert (code, err.count("\n")) == (1, 1) and err.startswith("error: cannot write") and "No space left" in err, err
    assert not glob.glob(os.path.join(disk, "**", ".tmp-*"), recursive=True)  # no half-written file left


# ----------------------------------------------------------------------------- a held lock

def test_a_merge_waits_for_a_held_folder_lock_naming_the_holder_then_gives_up(tmp_path, monkeypatch, capsys):
    """Observed: a CSV merge whose folder lock another process held waited forever without a word."""
    folder = tmp_path / "results"
    folder.mkdir()
    hold = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(folder)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        monkeypatch.setenv(utils.LOCK_TIMEOUT_VARIABLE, "1")
        with pytest.raises(utils.WriteError) as stopped:
            utils.merge_csv(str(folder / "runs.csv"), pd.DataFrame([{"run": "a"}]), ["run"])
    finally:
        holder.kill()
        holder.wait()
    assert str(stopped.value) == f"cannot write {folder} (locked by process {holder.pid} for 1 s); nothing in it was " \
                                 f"changed: wait for process {holder.pid} to end (or stop it), then run this again"
    assert capsys.readouterr().err == f"waiting for {folder}: process {holder.pid} holds its lock (giving up after 1 s)\n"
    assert os.listdir(folder) == []


# ----------------------------------------------------------------------------- leftovers of killed writes

def test_a_write_removes_the_temporaries_killed_writes_of_its_target_left_an_hour_ago(tmp_path):
    """Observed: .tmp-* files of killed writes stayed in the stats and results folders for good. A
    younger one may be another process's write under way: it stays."""
    old, young, other = tmp_path / ".tmp-a1b2fid.csv", tmp_path / ".tmp-c3d4fid.csv", tmp_path / ".tmp-e5f6x.npz"
    for path in (old, young, other):
        path.write_text("half a file")
    stale = time.time() - 2 * utils.STALE_TEMPORARY_SECONDS
    os.utime(old, (stale, stale))
    os.utime(other, (stale, stale))
    utils.atomic_write_text(str(tmp_path / "fid.csv"), "run\n")
    assert sorted(os.listdir(tmp_path)) == sorted([young.name, other.name, "fid.csv"])  # another target's: its write
    copy, half = tmp_path / "run_logs" / "gan-seed0", tmp_path / "run_logs" / ".tmp-gan-seed0-x1y2"
    half.mkdir(parents=True)
    os.utime(half, (stale, stale))
    (tmp_path / "log.txt").write_text("a log")
    utils.replace_folder(str(copy), [str(tmp_path / "log.txt")])
    assert os.listdir(tmp_path / "run_logs") == ["gan-seed0"]
