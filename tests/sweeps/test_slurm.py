"""ablate_p.sbatch on a real single-node Slurm, started by the test from Debian's slurm-wlm and munge
(.ci/run installs them; the tests are skipped, with the reason, where they are not installed or the
test cannot run slurmd as root). The job script is ablate_p.sbatch itself with its resources
(GPU, CPUs, time, log) and its sweep swapped for a tiny ring8 one: the array, srun, the share each
task takes and the signal handling are the real file's."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from layout import ROOT  # noqa: E402
DAEMONS = ["munged", "slurmctld", "slurmd", "sbatch", "srun", "scancel", "squeue", "sinfo"]
missing = [d for d in DAEMONS if shutil.which(d) is None and not os.path.exists(f"/usr/sbin/{d}")]
pytestmark = [
    pytest.mark.skipif(bool(missing), reason=f"Slurm is not installed ({', '.join(missing)} missing; "
                                             "apt-get install slurm-wlm munge)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="slurmd must run as root to start jobs"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def slurm_conf(folder, host):
    return "\n".join([
        "ClusterName=minkgantest", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}", "AuthType=auth/munge",
        f"StateSaveLocation={folder}/state", f"SlurmdSpoolDir={folder}/spool",
        f"SlurmctldPidFile={folder}/slurmctld.pid", f"SlurmdPidFile={folder}/slurmd.pid",
        f"SlurmctldLogFile={folder}/slurmctld.log", f"SlurmdLogFile={folder}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none", "MpiDefault=none",
        "SchedulerType=sched/backfill", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "ReturnToService=2", f"NodeName={host} CPUs={os.cpu_count()} State=UNKNOWN",
        "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""])


def start_munge():
    """munged as the munge user, unless one runs already; returns it to stop, or None."""
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
        return None
    os.makedirs("/run/munge", exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    proc = subprocess.Popen(["runuser", "-u", "munge", "--", "munged", "--foreground"])
    time.sleep(1)
    return proc


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A controller and one node on this machine; yields the environment that talks to them."""
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, socket.gethostname().split(".")[0]))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    munge = start_munge()
    daemons = [subprocess.Popen([daemon, "-D", "-f", str(conf)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT) for daemon in ("slurmctld", "slurmd")]
    try:
        deadline = time.time() + 60
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                                           text=True).stdout:
            if time.time() > deadline:
                pytest.fail("the test's Slurm did not come up: " + (folder / "slurmctld.log").read_text()[-2000:])
            time.sleep(0.5)
        yield env
    finally:
        for proc in daemons + ([munge] if munge else []):
            proc.terminate()
            proc.wait(timeout=30)


def job_script(tmp_path, sweep_args, array="0-1"):
    """ablate_p.sbatch with its resources and sweep replaced; everything else as committed."""
    text = open(os.path.join(ROOT, "ablate_p.sbatch")).read()
    text = re.sub(r"#SBATCH --array=.*", f"#SBATCH --array={array}", text)
    text = re.sub(r"#SBATCH --(gres|cpus-per-task|time)=.*\n", "", text)
    text = re.sub(r"#SBATCH --output=.*", f"#SBATCH --output={tmp_path}/slurm-%A_%a.log", text)
    sweep = re.search(r"srun python ablate_p.py .*?--runs \S+\n", text, re.S)
    assert sweep, "ablate_p.sbatch no longer has the srun line this test replaces"
    text = text.replace(sweep.group(0), f"srun {sys.executable} ablate_p.py {sweep_args}\n")
    path = tmp_path / "job.sbatch"
    path.write_text(text)
    return str(path)


def sbatch(env, script, *flags):
    out = subprocess.run(["sbatch", "--parsable", f"--chdir={ROOT}", *flags, script], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def job_gone(env, job):
    return subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True).stdout.strip() == ""


def count(pattern, path):
    return len(re.findall(pattern, open(path).read()))


def test_an_array_job_trains_every_run_exactly_once(slurm, tmp_path):
    runs = tmp_path / "runs"
    sweep = f"--dataset ring8 --losses minkowski gan --p 2 4 --seeds 0 --steps 200 --eval-every 0 --runs {runs}"
    sbatch(slurm, job_script(tmp_path, sweep), "--wait")
    names = ["minkowski-p2-seed0", "minkowski-p4-seed0", "gan-seed0"]
    for name in names:  # one array task trained it, once, to its end
        assert count(r"completed 200 steps", runs / "logs" / "ring8" / f"{name}.log") == 1, name
    assert len(list(tmp_path.glob("slurm-*_*.log"))) == 2  # both array tasks ran
    subprocess.run([sys.executable, "ablate_p.py", "--collect", "--runs", str(runs)], cwd=ROOT, check=True,
                   capture_output=True)
    table = pd.read_csv(runs / "results" / "runs.csv")
    assert sorted(table["run"]) == sorted(f"ring8/{n}" for n in names) and set(table["status"]) == {"completed"}


def test_a_task_signalled_mid_run_resumes_when_resubmitted(slurm, tmp_path):
    """scancel --signal=TERM reaches ablate_p.py through srun: its run stops as interrupted with a
    checkpoint, and the resubmitted job resumes it from there instead of starting again."""
    runs = tmp_path / "runs"
    sweep = (f"--dataset ring8 --losses minkowski --p 4 --seeds 0 --steps 3000 --ckpt-every 200 "
             f"--log-every 200 --eval-every 0 --runs {runs}")
    script = job_script(tmp_path, sweep, array="0")
    job = sbatch(slurm, script)
    checkpoint = runs / "ring8" / "minkowski-p4-seed0" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not checkpoint.exists():
        assert time.time() < deadline and not job_gone(slurm, job), "the job ended before its first checkpoint"
        time.sleep(0.5)
    subprocess.run(["scancel", "--signal=TERM", job], env=slurm, check=True)
    while not job_gone(slurm, job):
        time.sleep(0.5)
    log = runs / "logs" / "ring8" / "minkowski-p4-seed0.log"
    assert count(r"interrupted at step \d+", log) == 1
    stopped_at = int(re.search(r"interrupted at step (\d+)", open(log).read()).group(1))
    sbatch(slurm, script, "--wait")
    text = open(log).read()
    resumed_at = int(re.search(r"resuming at step (\d+)", text).group(1))
    assert 0 < resumed_at <= stopped_at < 3000  # from the checkpoint the interruption wrote
    assert count(r"completed 3000 steps", log) == 1
