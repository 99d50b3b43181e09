"""A run directory's one home: its config, its checkpoints and their checks, its lock, and the
leftovers of interrupted writes.

train.py writes run directories and holds the lock while it trains (one process per run
directory); evaluate.py reads them. Both import this module, so imports run one way:
train.py -> evaluate.py -> rundir.py -> models.py.
"""
import contextlib
import fcntl
import glob
import os

import torch

from minkgan import data
import models
from minkgan.utils import UserError, read_json

# How a run reads the paper's setup beyond the loss: its nets and what "weight clipping" clips.
# Rows of two readings are two experiments: the tables never average them together.
READING_COLUMNS = ["arch", "clip", "clip_params"]


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
    path = os.path.join(run_dir, "config.json")
    cfg = read_json(path)
    if cfg is None:
        raise UserError(f"{path} is missing or unreadable; is {run_dir} a run directory?")
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
