"""Train a GAN with any loss of losses.py; the defaults are the paper's Table 1.

    python train.py --loss minkowski --p 4                 # CIFAR-10, 200 epochs, as the paper
    python train.py --dataset ring8 --steps 3000           # the 2-D benchmark, minutes on a CPU

A run directory holds config.json, metrics.csv, samples/, checkpoints/last.pt and summary.json;
`--resume` continues a run exactly where it stopped. The settings are minkgan/settings.py, the step
minkgan/trainer.py, the run folder's files minkgan/rundir.py; this module is the loop that ties them.
"""
import io
import json
import math
import os
import signal
import sys
import time

import pandas as pd
import torch

from minkgan import ops
from minkgan import rundir
from minkgan.precision import tf32_switches
from minkgan.settings import TF32_MODES, build_parser, resolve
from minkgan.trainstep import Batches, Trainer, load_training_data
from minkgan.utils import (UserError, WriteError, atomic_save_figure, atomic_torch_save, atomic_write_bytes, atomic_write_csv,
                           atomic_write_text, check_writable_folder, eval_mode)

class TensorBoard:
    """--tensorboard: each row of metrics.csv and eval.csv, and each sample grid, as TensorBoard events
    in <out>/tensorboard; without the flag every call does nothing. Events from first_step on are purged,
    as metrics.csv drops the rows past a resumed checkpoint (a fresh run: every earlier event)."""

    def __init__(self, out, enabled, first_step):
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(os.path.join(out, "tensorboard"), purge_step=first_step)

    def scalars(self, group, row):
        """A logged row, {"step": ..., name: value}, as the scalars <group>/<name> (finite values only)."""
        if self.writer:
            for name, value in row.items():
                if name != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"{group}/{name}", value, row["step"])
            self.writer.flush()

    def image(self, path, step):
        """The sample grid (or 2-D scatter) just saved at path."""
        if self.writer:
            import numpy as np
            from PIL import Image
            self.writer.add_image("samples", np.asarray(Image.open(path).convert("RGB")), step, dataformats="HWC")
            self.writer.flush()

    def close(self):
        if self.writer:
            self.writer.close()


def save_samples(G, fixed_z, path, real_points=None):
    """An 8x8 grid of G's images, or a scatter of its 2-D points over the data; rendered in memory and
    written atomically, as every output."""
    with eval_mode(G), torch.no_grad():
        fake = G(fixed_z).cpu()
    if fake.dim() == 4:
        import torchvision
        png = io.BytesIO()
        torchvision.utils.save_image(fake[:64], png, format="png", nrow=8, normalize=True, value_range=(-1, 1))
        atomic_write_bytes(path, png.getvalue())
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.scatter(real_points[:, 0], real_points[:, 1], s=2, c="0.7", label="data")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, c="tab:orange", label="G(z)")
    lim = real_points.abs().max().item() * 1.4
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=os.path.basename(path)[:-4])
    ax.legend(loc="upper right", markerscale=4, fontsize=7)
    atomic_save_figure(fig, path, bbox_inches="tight")
    plt.close(fig)



PERIODIC = ("log_every", "eval_every", "sample_every", "ckpt_every")


def due(every, step, total_steps):
    """Whether a periodic action (every N steps, 0 = never) falls on `step`; the last step always counts."""
    return bool(every) and (step % every == 0 or step == total_steps)


def eval_due(cfg, step, total_steps):
    """--eval-every's steps and the end, and the --eval-at steps (which also imply the end)."""
    if cfg["eval_at"] and (step in cfg["eval_at"] or step == total_steps):
        return True
    return due(cfg["eval_every"], step, total_steps)


def eval_missing(cfg, step, total_steps, evals):
    """An eval falls on `step` and is not yet done (a resumed run may have been killed during it)."""
    return eval_due(cfg, step, total_steps) and not (evals and evals[-1]["step"] == step)



class StopRequest:
    """Ctrl-C or a scheduler's SIGTERM asks the loop to stop after the current step, so the
    checkpoint never holds a half-done step (exact resume). A second Ctrl-C stops at once,
    without a checkpoint: the last periodic one is kept. Restores the previous handlers on exit."""

    def __init__(self):
        self.requested = False

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        self.previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# ----------------------------------------------------------------------------- main

def main(argv=None):
    """Every input (the data root, the FID weights) and the run directory are checked before that
    directory is made: bad input leaves nothing behind. A write that fails (a full disk) stops the run
    with exit code 1; its last checkpoint is whole, as every file (atomic writes)."""
    cfg = resolve(build_parser().parse_args(argv))
    check_writable_folder(cfg["out"], "--out")
    rundir.refuse_existing_run(cfg)  # before the data is loaded, which can take minutes
    dataset = load_training_data(cfg)
    device = torch.device(cfg["device"])
    evaluator = make_evaluator(cfg, device)
    cfg = {**cfg, **budget(cfg, len(dataset))}
    with rundir.locked(cfg["out"]):  # one process per run directory
        ckpt = rundir.prepare_run_dir(cfg)
        rundir.remove_stale_temporaries(cfg["out"])
        backend = ops.set_backend(cfg["fused"], cfg["device"])  # --fused on: an error off the build's devices
        if ckpt is None:  # --overwrite, or --resume of a folder with none of train.py's files: start clean
            rundir.clear_run_files(cfg["out"])
        tf32 = set_determinism(device, cfg["deterministic"], cfg["tf32"])
        cfg = {**cfg, "backend": backend, "tf32": tf32}  # the run's config, final
        try:
            return train(cfg, device, dataset, ckpt, evaluator)
        except WriteError as e:
            raise WriteError(e.path, e.error, "the last checkpoint is kept: make room, then --resume continues "
                                              "from it") from None


def budget(cfg, n_samples):
    """What runs, not what was asked: --steps decides the epochs, --epochs the steps (G steps; an epoch
    is a pass of D's batches over the data, n_critic of them per G step)."""
    if n_samples < cfg["batch_size"]:
        raise UserError(f"the dataset has {n_samples} samples, fewer than --batch-size {cfg['batch_size']}")
    per_epoch = n_samples // cfg["batch_size"]
    total = cfg["steps"] or math.ceil(cfg["epochs"] * per_epoch / cfg["n_critic"])
    return {"total_steps": total, "steps": total, "epochs": round(total * cfg["n_critic"] / per_epoch, 4)}


def train(cfg, device, dataset, ckpt, evaluator):
    """Train the run of cfg (main's, final) to its total steps (from ckpt where it resumes), then write
    its summary; returns the exit code: 0 completed, 1 diverged, 130 interrupted."""
    torch.manual_seed(cfg["seed"])
    run = Run(cfg, device, dataset, evaluator)
    if ckpt is not None and not run.resume(ckpt):
        return 0
    atomic_write_text(os.path.join(cfg["out"], "config.json"), json.dumps({**cfg, **rundir.environment(device)}, indent=2) + "\n")
    status = run.loop(resumed=ckpt is not None)
    out, trainer = cfg["out"], run.trainer
    rundir.write_summary(cfg, status, trainer, run.total_steps, run.log.last_row, run.evals, time.time() - run.start)
    if status == "diverged":
        print(f"{out}: diverged (NaN or Inf loss) before step {trainer.step}; the last good checkpoint is kept",
              file=sys.stderr)
        return 1
    if status == "interrupted":
        print(f"{out}: interrupted at step {trainer.step}; --resume continues from its last checkpoint", file=sys.stderr)
        return 130
    print(f"{out}: completed {trainer.step} steps in {time.time() - run.start:.0f} s")
    return 0


class Run:
    """One run's loop, top to bottom: train steps, sum their statistics over a log interval, and at each
    step something is due, save what is due (a kept checkpoint, an evaluation, samples, the checkpoint)
    once the statistics are checked finite. cfg is main's, final: nothing here changes it."""

    def __init__(self, cfg, device, dataset, evaluator):
        self.cfg, self.device, self.evaluator = cfg, device, evaluator
        self.trainer = Trainer(cfg, device)
        self.batches = Batches(dataset.to(device), cfg["batch_size"], cfg["seed"])
        self.total_steps = cfg["total_steps"]
        os.makedirs(os.path.join(cfg["out"], "checkpoints"), exist_ok=True)
        self.seconds, self.evals = 0.0, []
        self.window, self.window_n = torch.zeros(len(rundir.STEP_STATS), device=device), 0  # sums since the last log
        self.finite = True  # the statistics of every logged interval were; the current ones are in window
        images = dataset.dtype == torch.uint8
        self.fixed_z = torch.randn(64 if images else 2000, cfg["z_dim"],
                                   generator=torch.Generator().manual_seed(cfg["seed"] + 1)).to(device)
        self.real_points = None if images else dataset[:2000]

    def resume(self, ckpt):
        """Continue from a checkpoint; False where the run has nothing left to do."""
        trainer, out = self.trainer, self.cfg["out"]
        trainer.load_state(ckpt, os.path.join(out, "checkpoints", "last.pt"))
        self.batches.drawn = trainer.step * self.cfg["n_critic"]
        self.seconds, self.evals = ckpt["seconds"], ckpt["evals"]
        window = ckpt["window"].to(self.device)
        self.window = torch.cat([window, window.new_zeros(len(rundir.STEP_STATS) - len(window))])  # older runs: fewer
        self.window_n = ckpt["window_n"]
        if trainer.step >= self.total_steps and not eval_missing(self.cfg, trainer.step, self.total_steps, self.evals):
            print(f"{out} already has {trainer.step} of {self.total_steps} steps")
            return False
        print(f"{out}: resuming at step {trainer.step} of {self.total_steps}")
        return True

    def checkpoint(self, name="last.pt"):
        extra = {"seconds": time.time() - self.start, "evals": self.evals, "epoch": self.batches.epoch(),
                 "window": self.window.cpu(), "window_n": self.window_n}
        atomic_torch_save(self.trainer.state(extra), os.path.join(self.cfg["out"], "checkpoints", name))

    def keep_checkpoint(self, step):
        """A copy of the state at a --save-at step, which later checkpoints do not replace."""
        if step in self.cfg["save_at"]:
            self.checkpoint(f"step{step:07d}.pt")

    def save_outputs(self, step):
        """The eval, samples and checkpoint due at `step`. A checkpoint comes before the eval (an FID
        takes minutes), so a run killed during it resumes with its training and only redoes the eval."""
        cfg, out = self.cfg, self.cfg["out"]
        eval_now = eval_missing(cfg, step, self.total_steps, self.evals)  # False with --eval-every 0 (no evaluator)
        if eval_now:
            self.checkpoint()
            self.evals.append({"step": step, **self.evaluator(self.trainer.G, step)})
            atomic_write_csv(pd.DataFrame(self.evals), os.path.join(out, "eval.csv"))
            self.board.scalars("eval", self.evals[-1])
        if due(cfg["sample_every"], step, self.total_steps):
            sample_path = os.path.join(out, "samples", f"step{step:07d}.png")
            save_samples(self.trainer.G, self.fixed_z, sample_path, self.real_points)
            self.board.image(sample_path, step)
        if eval_now or due(cfg["ckpt_every"], step, self.total_steps):
            self.checkpoint()

    def all_finite(self):
        """No step statistic so far is NaN or infinite: checked on the interval sums, not step by step
        (a NaN or an infinity stays in a sum), which saves three kernels a step."""
        return self.finite and bool(torch.isfinite(self.window).all())

    def log_interval(self, step, bar):
        """metrics.csv's row of the interval that ends at `step`: the means of its step statistics."""
        values = (self.window / self.window_n).tolist()  # the one host sync per log interval
        self.finite = self.finite and all(map(math.isfinite, values))
        self.log.write([step, round(self.batches.epoch(), 4), *values, round(time.time() - self.start, 2)])
        self.board.scalars("train", self.log.last_row)
        named = dict(zip(rundir.STEP_STATS, values))
        bar.set_postfix(loss_d=f"{named['loss_d']:.4f}", loss_g=f"{named['loss_g']:.4f}")
        self.window.zero_()
        self.window_n = 0

    def something_due(self, step):
        cfg = self.cfg
        return (any(due(cfg[k], step, self.total_steps) for k in PERIODIC) or step in cfg["save_at"]
                or eval_due(cfg, step, self.total_steps))

    def loop(self, resumed):
        """Train to the total steps; returns the status: completed, diverged or interrupted."""
        from tqdm import tqdm
        cfg, trainer, out = self.cfg, self.trainer, self.cfg["out"]
        self.log = rundir.MetricsLog(os.path.join(out, "metrics.csv"), resume_step=trainer.step if resumed else None)
        self.board = TensorBoard(out, cfg["tensorboard"], trainer.step + 1 if resumed else 0)
        bar = tqdm(total=self.total_steps, initial=trainer.step, desc=os.path.basename(out), dynamic_ncols=True,
                   disable=None)  # no bar when stderr is not a terminal (logs, CI, sweeps)
        status, self.start = "completed", time.time() - self.seconds
        try:
            with StopRequest() as stop:
                if resumed and eval_missing(cfg, trainer.step, self.total_steps, self.evals):
                    self.save_outputs(trainer.step)  # killed during this eval: redo it, and what came after it
                if trainer.step == 0:
                    self.keep_checkpoint(0)
                while trainer.step < self.total_steps:
                    if stop.requested:  # between steps: the state is whole
                        status = "interrupted"
                        if self.all_finite():
                            self.checkpoint()
                        break
                    self.window += trainer.train_step(self.batches, self.total_steps)
                    self.window_n += 1
                    bar.update(1)
                    step = trainer.step
                    if due(cfg["log_every"], step, self.total_steps):
                        self.log_interval(step, bar)
                    if not self.something_due(step):
                        continue
                    if not self.all_finite():  # checked before anything is evaluated or saved
                        status = "diverged"
                        break
                    self.keep_checkpoint(step)
                    self.save_outputs(step)
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, keep the last periodic checkpoint
            status = "interrupted"
        finally:
            bar.close()
            self.log.close()
            self.board.close()
        return status



def set_determinism(device, deterministic, tf32="auto"):
    """cudnn.benchmark picks the fastest kernels per shape, which differ from run to run, so GPU runs
    are then not bit-reproducible; --deterministic trades that speed for reproducibility. TF32 keeps
    10 of float32's 23 mantissa bits in the products: off under --deterministic unless asked for.
    Returns the TF32 mode used, for config.json: None on the CPU, which has none."""
    if device.type != "cuda":
        return None
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
        torch.use_deterministic_algorithms(True, warn_only=True)
    mode = ("off" if deterministic else "conv") if tf32 == "auto" else tf32
    for (obj, name, on, off), enabled in zip(tf32_switches(), TF32_MODES[mode]):
        setattr(obj, name, on if enabled else off)
    return mode


def make_evaluator(cfg, device):
    if not (cfg["eval_every"] or cfg["eval_at"]):
        return None
    from minkgan import evaluation as evaluate
    return evaluate.TrainingEvaluator(cfg, device)

