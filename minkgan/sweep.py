"""The sweep's processes: each run a train.py child in its own process group that dies with the sweep,
its output in <runs>/logs, a run that ends without a status of its own recorded in failed.json, and
the progress lines; ablate_p.py plans the runs and calls run_sweep.
"""
from concurrent.futures import ThreadPoolExecutor
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd

from minkgan import paths
from minkgan import rundir
from minkgan.utils import WriteError, atomic_write_text, read_json

FINAL_STATUSES = ("completed", "diverged")  # done: neither a late signal nor a stale failed.json undoes them


def run_status(run_dir):
    summary = read_json(os.path.join(run_dir, "summary.json"))
    return summary["status"] if summary else None


def remove_stale_failure(failed_json):
    """Delete the failed.json of a run that is done after all (a SIGTERM that came after its summary)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(failed_json)


PR_SET_PDEATHSIG = 1
LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(parent_pid):
    """For a child, between fork and exec: SIGTERM when the sweep dies (Linux's PR_SET_PDEATHSIG;
    train.py then checkpoints and stops as interrupted), or exit now if it already has. libc is
    loaded before the fork: loading it in the child could deadlock."""
    if LIBC is not None:
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        os._exit(1)


class Children:
    """The sweep's running train.py processes. Each has its own process group (a terminal's Ctrl-C
    reaches only the sweep) and dies with the sweep; stop() asks them all to stop (SIGTERM: they
    checkpoint and exit as interrupted) and makes start() refuse new runs."""

    def __init__(self):
        self.lock, self.running, self.stopped = threading.Lock(), set(), False

    def start(self, cmd, **kwargs):
        """Popen(cmd), or None once the sweep is stopping."""
        with self.lock:
            if self.stopped:
                return None
            parent = os.getpid()
            proc = subprocess.Popen(cmd, process_group=0, preexec_fn=lambda: die_with_parent(parent), **kwargs)
            self.running.add(proc)
            return proc

    def wait(self, proc):
        """(exit code, what it wrote to its stderr pipe) of a started process, once it has ended."""
        _, errors = proc.communicate()
        with self.lock:
            self.running.discard(proc)
        return proc.returncode, errors or ""

    def stop(self, *_signal):
        """A signal handler: runs in the main thread, which never holds self.lock."""
        with self.lock:
            self.stopped = True
            for proc in self.running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)


def train_one(name, argv, settings, runs_dir, threads, children):
    """One train.py process, its output in <runs>/logs/<name>.log; returns (name, its final status,
    a note) ("not started" when the sweep was stopped first).

    A run that ends without a status of its own (a crash, bad input, a full disk) is failed: the note
    starts with the `error:` line train.py printed, and failed.json records it with the run's
    settings, exit code and log, so that --collect counts it. train.py's stderr comes through a pipe
    and is added to the log at the end, so that the reason reaches the sweep even when the disk has
    no room left for the log or for failed.json (the note then says so).
    """
    out = argv[argv.index("--out") + 1]
    failed_json = os.path.join(out, "failed.json")
    if run_status(out) in FINAL_STATUSES:
        remove_stale_failure(failed_json)
        return name, run_status(out), "skipped (already done)"
    argv = restart_without_checkpoint(argv, out)
    log_path = os.path.join(runs_dir, "logs", f"{name}.log")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.time()
    try:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        log = open(log_path, "a")
    except OSError as e:
        return name, "failed", str(WriteError(log_path, e, "the run was not started"))
    with log:
        proc = children.start([sys.executable, os.path.join(paths.ROOT, "train.py"), *argv],
                              stdout=log, stderr=subprocess.PIPE, text=True, errors="replace", env=env)
        if proc is None:
            return name, "not started", "the sweep was stopped"
        remove_stale_failure(failed_json)
        code, errors = children.wait(proc)
    reason = error_line(errors)
    ended = run_status(out)  # a run this process completed stays completed, whatever signal came after
    status = ended if ended in FINAL_STATUSES or (code in (0, 1, 130) and reason is None) else None
    note = f"exit {code} after {time.time() - start:.0f} s, log {log_path}"
    try:
        append_to_log(log_path, errors)
        if status is None:
            atomic_write_text(failed_json, json.dumps({**settings, "status": "failed", "exit_code": code,
                                                       "error": reason, "log": log_path}))
    except WriteError as e:
        note += f"; {e}"
    return name, status or "failed", f"{reason}; {note}" if reason else note


def restart_without_checkpoint(argv, out):
    """argv with --overwrite for --resume where the run has no checkpoint to continue from (killed
    before its first one, or a start that failed): train.py --resume refuses to train over a run's
    files, and an unfinished run without a checkpoint has nothing to lose."""
    if os.path.exists(rundir.last_checkpoint(out)):
        return argv
    return ["--overwrite" if a == "--resume" else a for a in argv]


def error_line(stderr):
    """The last one-line error train.py printed (`error: ...`, without the prefix), or None."""
    lines = [line[len("error: "):] for line in stderr.splitlines() if line.startswith("error: ")]
    return lines[-1] if lines else None


def append_to_log(path, text):
    """Add train.py's stderr (which came through a pipe) to the end of its log."""
    try:
        with open(path, "a") as log:
            log.write(text)
    except OSError as e:
        raise WriteError(path, e, "the log lacks train.py's stderr") from None


def progress_line(name, run_dir):
    """'name: step s/t, ETA' from the run's last metrics row."""
    try:
        rows = pd.read_csv(os.path.join(run_dir, "metrics.csv"), on_bad_lines="skip")
        cfg = read_json(os.path.join(run_dir, "config.json")) or {}
        step, seconds, total = int(rows["step"].iloc[-1]), float(rows["seconds"].iloc[-1]), cfg["total_steps"]
    except (OSError, KeyError, IndexError, ValueError, pd.errors.EmptyDataError):
        return f"  {name}: starting"
    eta = seconds / max(step, 1) * (total - step)
    return f"  {name}: step {step}/{total}, ETA {eta / 60:.1f} min"


def run_sweep(args, runs):
    """Run the planned runs, --jobs at a time; print progress; return ({name: status}, {name: note},
    stopped). Ctrl-C or SIGTERM stops the running runs (they checkpoint) and starts no new one."""
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    statuses, notes, last_report, children = {}, {}, time.time(), Children()
    previous = {sig: signal.signal(sig, children.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(train_one, name, argv, settings, args.runs, threads, children): name
                       for name, argv, settings in runs}
            while futures:
                for f in [f for f in futures if f.done()]:
                    name, status, note = f.result()
                    statuses[name], notes[name] = status, note
                    if status != "not started":
                        print(f"[{len(statuses)}/{len(runs)}] {name}: {status} ({note})", flush=True)
                    del futures[f]
                running = [name for f, name in futures.items() if f.running()]
                if running and time.time() - last_report > 60 and not children.stopped:
                    print("\n".join(progress_line(n, os.path.join(args.runs, n)) for n in running), flush=True)
                    last_report = time.time()
                time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return statuses, notes, children.stopped

