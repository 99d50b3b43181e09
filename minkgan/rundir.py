"""A run directory's one home: its config (read through settings.upgrade_config), its checkpoints and
their checks, its lock, metrics.csv's columns and rows, its summary, the checks before a run is
resumed or replaced, and the leftovers of interrupted writes.

train.py writes run directories and holds the lock while it trains (one process per run
directory); evaluate.py, the sweep and the analyses read them. Imports run one way:
training -> trainstep -> rundir -> settings -> models.
"""
import contextlib
import csv
import fcntl
import glob
import io
import json
import math
import os
import platform
import shutil
import subprocess

import pandas as pd
import torch

from minkgan import data
import models
from minkgan import paths
from minkgan import settings
from minkgan.precision import cpu_name
from minkgan.utils import (UserError, WriteError, atomic_write_csv, atomic_write_text, is_number, read_json)

# How a run reads the paper's setup beyond the loss: its nets and what "weight clipping" clips.
# Rows of two readings are two experiments: the tables never average them together.
READING_COLUMNS = ["arch", "clip", "clip_params"]
# A run's identity in the tables: a rerun of the same (dataset, loss, p, n_critic, Adam eps, reading, precision,
# seed, budget) replaces its row; adam_eps and precision are empty where they are the defaults, so rows from
# before they were recorded keep theirs. GROUP_KEY: the runs whose seeds share a mean.
RUN_KEY = ["dataset", "loss", "p", "n_critic", "adam_eps", *READING_COLUMNS, "precision", "seed", "total_steps"]
GROUP_KEY = ["dataset", "loss", "p", "n_critic", *READING_COLUMNS, "precision", "total_steps"]


def reading(cfg):
    """A run's READING_COLUMNS from its config. Configs from before a setting was recorded ran with
    the only behaviour there was then: DCGAN (MLP on 2-D data) and every D parameter clipped."""
    clip = float(cfg.get("clip") or 0.0)
    arch = cfg.get("arch") or ("mlp" if cfg.get("dataset") in data.TOY_DATASETS else "dcgan")
    return {"arch": arch, "clip": clip, "clip_params": (cfg.get("clip_params") or "all") if clip else None}


LOCK_NAME = "train.lock"  # holds the PID of the process that trains the run


@contextlib.contextmanager
def locked(run_dir):
    """Hold an exclusive OS lock (flock) on run_dir for the block: the kernel releases it when the
    process dies, however it dies, so a lock is never stale; a second process gets a UserError
    naming the holder's PID. A directory this call created is removed again when the block fails
    before writing anything (bad input leaves nothing behind)."""
    created = not os.path.exists(run_dir)
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot use {run_dir} as a run directory ({e.strerror}); name a folder with --out") from None
    fd = os.open(os.path.join(run_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UserError(f"{run_dir} is being trained by process {holder}; wait for it to end, stop it "
                        f"(kill {holder}), or use another --out") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    try:
        yield
    except BaseException:
        if created and is_empty(run_dir):
            os.remove(os.path.join(run_dir, LOCK_NAME))
            os.rmdir(run_dir)
        raise
    finally:
        os.close(fd)  # releases the lock


def last_checkpoint(run_dir):
    """The path of the checkpoint a run resumes from (and evaluate.py reads by default)."""
    return os.path.join(run_dir, "checkpoints", "last.pt")


def is_training(run_dir):
    """A live process holds run_dir's lock: its run is under way, neither finished nor failed."""
    try:
        fd = os.open(os.path.join(run_dir, LOCK_NAME), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def is_empty(run_dir):
    """Nothing in run_dir but its lock file."""
    return not os.path.isdir(run_dir) or not set(os.listdir(run_dir)) - {LOCK_NAME}


def remove_stale_temporaries(run_dir):
    """Delete the `.tmp-*` files of atomic writes that a kill interrupted (utils._atomic); only the
    lock holder may call this, as no other process writes there."""
    for path in glob.glob(os.path.join(run_dir, ".tmp-*")) + glob.glob(os.path.join(run_dir, "*", ".tmp-*")):
        os.remove(path)


def load_checkpoint(path, remedy):
    """The dict in a checkpoint file; an unreadable one is a UserError that ends with `remedy`."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"checkpoint {path} is unreadable ({type(e).__name__}); {remedy}") from None
    if not isinstance(ckpt, dict):
        raise UserError(f"checkpoint {path} is not a train.py checkpoint; {remedy}")
    return ckpt


def check_checkpoint(ckpt, path, keys, models, remedy):
    """That a checkpoint holds `keys` and, for each {key: module}, a state dict of the module's
    names and shapes: a checkpoint of another run (another --width, --arch) is a UserError before
    anything is loaded, not a size-mismatch traceback halfway through."""
    missing = [k for k in keys if k not in ckpt]
    if missing:
        raise UserError(f"checkpoint {path} lacks {', '.join(missing)}; is it a train.py checkpoint? {remedy}")
    for key, module in models.items():
        expected = {name: tuple(t.shape) for name, t in module.state_dict().items()}
        saved = ckpt[key]
        found = {name: tuple(t.shape) for name, t in saved.items()} if isinstance(saved, dict) else {}
        if found != expected:
            diff = sorted(set(expected.items()) ^ set(found.items()))
            what = f"{diff[0][0]} {found.get(diff[0][0], 'missing')} vs {expected.get(diff[0][0], 'unexpected')}" \
                if diff else "no state dict"
            raise UserError(f"the {key} in checkpoint {path} does not fit this run's settings ({what}); {remedy}")


def read_config(run_dir):
    """A run's config.json, upgraded to this version's settings (settings.upgrade_config)."""
    path = os.path.join(run_dir, "config.json")
    cfg = read_json(path)
    if not isinstance(cfg, dict):
        raise UserError(f"{path} is missing or unreadable; is {run_dir} a run directory?")
    cfg = settings.upgrade_config(cfg)
    missing = [k for k in settings.RUN_DEFINING if k not in cfg]
    if missing:
        raise UserError(f"{path} lacks {missing[0]}, which train.py has always written; is {run_dir} a run directory "
                        f"of this repository?")
    return cfg


def build_models(cfg, device):
    """(G, D) of a run's config, on device."""
    G, D = models.build(cfg["arch"], cfg["z_dim"], cfg["width"], cfg.get("d_norm"), cfg["sn"])
    return G.to(device), D.to(device)


def load_generator(run_dir, checkpoint=None, device="cpu"):
    """(G in eval mode, config, step) of a run, from its last checkpoint or the one given."""
    if not os.path.isdir(run_dir):
        raise UserError(f"run directory {run_dir} does not exist")
    cfg = read_config(run_dir)
    path = checkpoint or last_checkpoint(run_dir)
    if not os.path.isfile(path):
        raise UserError(f"no checkpoint at {path}; train the run first or pass --checkpoint")
    remedy = "evaluate another checkpoint (--checkpoint) or train the run again"
    ckpt = load_checkpoint(path, remedy)
    G, _ = build_models(cfg, device)
    check_checkpoint(ckpt, path, ["G"], {"G": G}, remedy)
    G.load_state_dict(ckpt["G"])
    return G.eval(), cfg, ckpt.get("step")


# A training step's statistics, in the order Trainer.train_step returns them (a tensor: one host sync per
# log interval): its losses and gradient norms, then D's regime (Trainer.logit_stats). metrics.csv logs
# the mean of each over a log interval, between the step, the epoch and the seconds so far.
LOSS_STATS = ["loss_d", "loss_g", "grad_norm_d", "grad_norm_g"]
LOGIT_STATS = ["d_real", "d_fake", "logit_real", "logit_fake", "logit_real_std", "logit_fake_std", "logit_absmax",
               "clip_share"]
STEP_STATS = LOSS_STATS + LOGIT_STATS
METRIC_COLUMNS = ["step", "epoch", *STEP_STATS, "seconds"]


def environment(device):
    """What produced the run: versions, code revision and the training device's hardware, for the config."""
    here = paths.ROOT
    try:
        rev = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        git = rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if rev.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        git = None
    return {"torch": torch.__version__, "python": platform.python_version(), "git": git,
            "hardware": hardware_name(device)}


def hardware_name(device):
    """The GPU's name for a CUDA device (that device's, not GPU 0's), else the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} x{torch.get_num_threads()} threads"



def whole_rows_up_to(path, step):
    """metrics.csv's header and its whole rows up to `step`, as CSV text: a row with another number of
    fields than the header or a cell that is no number (a line torn by a kill, cut to `30`) is dropped,
    as is every row past the checkpoint's step. Empty cells are whole: an older run's rows have them
    in the columns added since."""
    with open(path, newline="", errors="replace") as f:
        rows = list(csv.reader(f))
    header = rows[0] if rows and "step" in rows[0] else METRIC_COLUMNS
    at = header.index("step")
    kept = [r for r in rows[1:] if len(r) == len(header) and all(c == "" or is_number(c) for c in r)
            and is_number(r[at]) and float(r[at]) <= step]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *kept])
    return text.getvalue()


class MetricsLog:
    """metrics.csv, one row per logged step; rows past a resumed checkpoint are dropped."""

    def __init__(self, path, resume_step=None):
        self.path = path
        self.last_row = None  # as written (or kept from a resumed run), for the summary
        if resume_step is not None and os.path.exists(path):
            rows = pd.read_csv(io.StringIO(whole_rows_up_to(path, resume_step)))
            rows = rows.reindex(columns=METRIC_COLUMNS)  # older runs lack columns
            atomic_write_csv(rows, path)
            self.last_row = rows.iloc[-1].to_dict() if len(rows) else None
        new = not os.path.exists(path)
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as e:
            raise WriteError(path, e) from None
        if new:
            self._append(METRIC_COLUMNS)

    def write(self, row):
        row = [float(f"{v:.6g}") if isinstance(v, float) else v for v in row]
        self._append(row)
        self.last_row = dict(zip(METRIC_COLUMNS, row))

    def _append(self, row):
        """Append one whole CSV line or nothing: a write cut short (a full disk) is cut off the file
        again, so that a resumed run never reads a torn row."""
        line = io.StringIO()
        csv.writer(line).writerow(row)
        data, size = memoryview(line.getvalue().encode()), os.fstat(self.fd).st_size
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError as e:
            os.ftruncate(self.fd, size)
            raise WriteError(self.path, e) from None

    def close(self):
        os.close(self.fd)



def refuse_existing_run(cfg, lock_held=False):
    """A run directory in use is continued (--resume, from its checkpoint) or replaced (--overwrite)
    only when asked: --resume with no checkpoint to continue from never trains over a run's files
    (a completed run whose checkpoints were deleted would lose its logs). Before this process holds
    the run's lock, a run another process is training is left to locked, which names it."""
    out = cfg["out"]
    if not is_empty(out) and not (cfg["resume"] or cfg["overwrite"]):
        raise UserError(f"run directory {out} already exists; pass --resume to continue it, "
                        f"--overwrite to start again, or another --out")
    found = run_files_in(out)
    if cfg["resume"] and found and not os.path.exists(last_checkpoint(out)) and \
            (lock_held or not is_training(out)):
        status = (read_json(os.path.join(out, "summary.json")) or {}).get("status")
        what = f"a {status} run" if status else f"a run's files ({', '.join(found)})"
        raise UserError(f"{out} holds {what} but no checkpoint to resume from ({last_checkpoint(out)}); "
                        f"pass --overwrite to train it again, or another --out")


def prepare_run_dir(cfg):
    """Decide between a fresh run and a resumed one; return the checkpoint to resume or None."""
    out, ckpt_path = cfg["out"], last_checkpoint(cfg["out"])
    refuse_existing_run(cfg, lock_held=True)
    if not (cfg["resume"] and os.path.exists(ckpt_path)):
        return None
    saved = read_config(out)
    # a setting that does not apply to this run (None) cannot have changed it
    changed = [k for k in settings.RUN_DEFINING if cfg[k] is not None and saved[k] != cfg[k]]
    if changed:
        k = changed[0]
        was, now = settings.typed_flag(saved, k), settings.typed_flag(cfg, k)
        raise UserError(f"{out} was trained with {was} {saved[k]}, not {'' if now == was else now + ' '}{cfg[k]}; "
                        f"resume with the same settings or use another --out")
    return load_checkpoint(ckpt_path, "delete it or pass --overwrite to start again")



RUN_FILES = ["config.json", "metrics.csv", "eval.csv", "summary.json", "samples", "checkpoints", "tensorboard"]


def run_files_in(out):
    """The RUN_FILES that out holds: train.py's files, not the user's."""
    return [name for name in RUN_FILES if os.path.lexists(os.path.join(out, name))]


def clear_run_files(out):
    """Delete what train.py writes in a run directory (only that: --out may hold other files)."""
    for name in RUN_FILES:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def write_summary(cfg, status, trainer, total_steps, last_row, evals, seconds):
    summary = {"status": status, "step": trainer.step, "total_steps": total_steps, "seconds": round(seconds, 1)}
    if last_row:
        summary.update(epoch=last_row["epoch"], loss_d=last_row["loss_d"], loss_g=last_row["loss_g"])
    summary.update(eval_summary(evals))
    summary = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()}
    text = json.dumps(summary, indent=2, allow_nan=False)  # a NaN is null: strict JSON readers reject a bare NaN
    atomic_write_text(os.path.join(cfg["out"], "summary.json"), text + "\n")


# How "best" reads per metric; density has no best (above 1 is not better), the FID floor is a constant.
BEST = {"fid": min, "kid": min, "rkl": min, "modes": max, "hq_pct": max, "precision": max, "recall": max,
        "coverage": max}


def eval_summary(evals):
    """The final value of every evaluation metric, and the best one (with its step) of each in BEST."""
    out = {}
    if not evals:
        return out
    finite = lambda v: v is not None and v == v  # noqa: E731  (NaN, e.g. rkl with no mode captured)
    for key, value in evals[-1].items():
        if key == "step":
            continue
        out[f"final_{key}"] = value if finite(value) else None
        candidates = [r for r in evals if finite(r.get(key))]
        if key in BEST and candidates:
            best = BEST[key](candidates, key=lambda r: r[key])
            out[f"best_{key}"], out[f"best_{key}_step"] = best[key], best["step"]
    return out

