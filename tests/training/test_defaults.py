"""No script rewrites committed results by default: each runs with its default outputs (at the
smallest sizes that still write them) in a clean clone of the repository, and `git status` stays clean."""
import csv
import os
import shutil
import subprocess
import sys

from analysis import dynamics
from minkgan import utils

from layout import ROOT  # noqa: E402
RUN = os.path.join("runs", "ring8", "minkowski-p4-seed0")  # train.py's default --out for these flags
DEFAULT_RUNS = [
    ["train.py", "--dataset", "ring8", "--steps", "2", "--log-every", "1", "--save-at", "0", "--fused", "off"],
    ["evaluate.py", RUN, "--n", "20"],
    ["analysis/alignment.py", RUN, "--batch-size", "4"],
    ["analysis/trajectories.py", "--dataset", "ring8", "--steps", "1", "--every", "1", "--n-images", "4", "--losses", "wgan",
     "gan"],
    ["analysis/figures.py", os.path.join("results", "run_logs", "folder-313steps")],
    ["analysis/p_effect.py", os.path.join("results", "runs.csv"), "--steps", "1562", "--permutations", "10"],
    ["analysis/dynamics.py", "bilinear", "--steps", "5"],
    ["analysis/dynamics.py", "two-point", "--steps", "10", "--hold", "0", "--n-init", "2", "--opt-steps", "1"],
    ["analysis/dynamics.py", "dirac", "--steps", "5"],
    ["ablate_p.py", "--dataset", "ring8", "--p", "4", "--steps", "2", "--eval-every", "0", "--fused", "off"],
    ["analysis/derivations.py"],
]
DEFAULT_OUTPUTS = [os.path.join(RUN, "summary.json"), "runs/results/toy_metrics.csv", "runs/alignment/alignment.csv",
                   "runs/trajectories/trajectories.csv", "runs/figures/losses.png", "runs/dynamics/bilinear.csv",
                   "runs/dynamics/two_point.csv", "runs/dynamics/dirac.csv", "runs/sweep/results/runs.csv"]
# One process runs every script as `python script argv` would: torch is imported once.
DRIVER = """
import runpy, sys
for argv in {runs!r}:
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        if e.code:
            sys.exit(f"{{argv}} exited with {{e.code}}")
"""


def clone_of_the_working_tree(dest):
    """A clone of the repository holding its tracked files as they are now, committed: a clean start."""
    subprocess.run(["git", "clone", "-q", ROOT, dest], check=True)
    tracked = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, check=True).stdout
    for path in filter(None, tracked.decode().split("\0")):
        source, copy = os.path.join(ROOT, path), os.path.join(dest, path)
        if os.path.isfile(source):
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            shutil.copyfile(source, copy)
        elif os.path.lexists(copy):
            os.remove(copy)
    git = ["git", "-C", dest, "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "the working tree"], check=True)


def test_every_script_run_with_its_defaults_leaves_git_status_clean(tmp_path):
    """Observed: `python -m analysis.dynamics two-point` rewrote the committed results/dynamics/*.csv."""
    clone = str(tmp_path / "clone")
    clone_of_the_working_tree(clone)
    done = subprocess.run([sys.executable, "-c", DRIVER.format(runs=DEFAULT_RUNS)], cwd=clone, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    status = subprocess.run(["git", "-C", clone, "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout
    assert status == "", status
    assert [path for path in DEFAULT_OUTPUTS if not os.path.isfile(os.path.join(clone, path))] == []


def test_a_rerun_that_agrees_to_the_last_digits_leaves_results_byte_for_byte(tmp_path):
    """A rerun on another CPU (last-digit changes) into the committed folder keeps its files as they are;
    a rerun whose numbers differ beyond utils.AGREE_RTOL replaces them."""
    csv_path, png_path = tmp_path / "bilinear.csv", tmp_path / "bilinear.png"
    assert dynamics.main(["bilinear", "--steps", "5", "--out", str(tmp_path)]) == 0
    computed = csv_path.read_text()

    def committed(factor):
        """The CSV as another machine wrote it (its last radius times factor), and a figure of its own."""
        rows = list(csv.reader(computed.splitlines()))
        rows[-1][rows[0].index("radius")] = repr(float(rows[-1][rows[0].index("radius")]) * factor)
        csv_path.write_text("\n".join(",".join(r) for r in rows) + "\n")
        png_path.write_bytes(b"the committed figure")
        return csv_path.read_text()

    close = committed(1 + utils.AGREE_RTOL / 10)
    assert dynamics.main(["bilinear", "--steps", "5", "--out", str(tmp_path)]) == 0
    assert csv_path.read_text() == close and png_path.read_bytes() == b"the committed figure"
    committed(1 + utils.AGREE_RTOL * 10)
    assert dynamics.main(["bilinear", "--steps", "5", "--out", str(tmp_path)]) == 0
    assert csv_path.read_text() == computed and png_path.read_bytes().startswith(b"\x89PNG")
