"""The training step: the data's batches, the nets and their Adam optimisers, D's clipping, and a
Trainer whose train_step updates D n_critic times and G once and returns the step's statistics
(rundir.STEP_STATS) as one device tensor.
"""
import torch

from minkgan import data
import losses
from minkgan import precision
from minkgan import rundir
from minkgan.utils import UserError

TOY_TRAIN_SIZE = 100_000  # points drawn once per seed: the toy "dataset" an epoch goes through


# ----------------------------------------------------------------------------- data

class Batches:
    """Shuffled mini-batches of an in-memory dataset, a pure function of (seed, batches drawn).

    Each epoch's order comes from its own generator seeded by (seed, epoch), so a resumed
    run continues with exactly the batches an uninterrupted one would have drawn.
    """

    def __init__(self, tensor, batch_size, seed, drawn=0):
        if len(tensor) < batch_size:
            raise UserError(f"the dataset has {len(tensor)} samples, fewer than --batch-size {batch_size}")
        self.tensor, self.batch_size, self.seed, self.drawn = tensor, batch_size, seed, drawn
        self.per_epoch = len(tensor) // batch_size
        self._order_epoch, self._order = None, None

    def epoch(self):
        return self.drawn / self.per_epoch

    def next(self):
        epoch, i = divmod(self.drawn, self.per_epoch)
        if epoch != self._order_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._order = torch.randperm(len(self.tensor), generator=g).to(self.tensor.device)
            self._order_epoch = epoch
        self.drawn += 1
        return self.tensor[self._order[i * self.batch_size:(i + 1) * self.batch_size]]


def load_training_data(cfg):
    """The training set as one tensor: uint8 images or float 2-D points."""
    if cfg["dataset"] in data.TOY_DATASETS:
        return data.sample_toy(cfg["dataset"], TOY_TRAIN_SIZE, torch.Generator().manual_seed(cfg["seed"]))
    return data.load_images(cfg["dataset"], cfg["data_root"], "train")


def to_input(batch):
    """A batch as D's input: images to [-1, 1] floats, 2-D points as they are."""
    return data.to_model_range(batch) if batch.dtype == torch.uint8 else batch


# ----------------------------------------------------------------------------- models

def build_optimizers(cfg, G, D):
    betas, eps = (cfg["beta1"], cfg["beta2"]), cfg["adam_eps"]
    options = adam_options(next(G.parameters()).device)
    return (torch.optim.Adam(G.parameters(), lr=cfg["lr_g"], betas=betas, eps=eps, **options),
            torch.optim.Adam(D.parameters(), lr=cfg["lr_d"], betas=betas, eps=eps, **options))


def adam_options(device):
    """Fused Adam on a GPU: a few kernels for all the parameters, where foreach launches several per
    tensor group (a step there is launch-bound). On the CPU torch's default, as every CPU run so far:
    the same weights to the bit."""
    return {"fused": True if device.type == "cuda" else None}


def use_adam_options(opt):
    """After load_state_dict, which takes the checkpoint's 'fused' along: this device's Adam again (a
    GPU run resumed on the CPU must not turn fused there, nor a CPU run resumed on a GPU stay unfused),
    with the step counts on the parameters' device, where fused Adam keeps them."""
    device = opt.param_groups[0]["params"][0].device
    options = adam_options(device)
    for group in opt.param_groups:
        group.update(options)
    if options["fused"]:
        for state in opt.state.values():
            state["step"] = state["step"].to(device, torch.float32)


# ----------------------------------------------------------------------------- training

def grad_norm(module):
    """L2 norm of all parameter gradients of a module, as a float32 device tensor (no host sync). The
    squares are summed in float64: a float32 gradient of 1e-25 (p near MAX_P) squares to 1e-50, which
    float32 flushes to 0 and float64 holds down to the smallest float32 gradient."""
    norms = [torch.linalg.vector_norm(p.grad, dtype=torch.float64) for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)).float()


def clipped_params(module, which):
    """The parameters --clip acts on: all of them, or only conv/linear weights (those with more than one dim)."""
    return [p for p in module.parameters() if which == "all" or p.dim() > 1]


@torch.no_grad()
def clip_weights(params, c):
    torch._foreach_clamp_min_(params, -c)
    torch._foreach_clamp_max_(params, c)


@torch.no_grad()
def share_at_bound(params, c):
    """Share of the clipped parameters sitting at +-c: near 1, D is a sign pattern, not a learned function.
    On one concatenation: five kernels, where three a parameter tensor were the most of a step's statistics."""
    flat = torch.cat([p.reshape(-1) for p in params])
    return (flat.abs() >= c * (1 - 1e-6)).sum() / flat.numel()


def tune_for_speed(G, D, cfg):
    """--channels-last and --compile change the kernels, not the model: the results differ from eager
    only in the order of floating-point operations (tests/training/test_train.py bounds it). Module.compile
    compiles in place, so the state_dict's names, and the checkpoints, are the same either way.
    CUDA graphs (mode reduce-overhead) are not used: D runs twice before its backward, and the
    second replay would overwrite the first's outputs."""
    if cfg.get("channels_last"):
        G.to(memory_format=torch.channels_last)  # 4-D weights only; the MLP is unchanged
        D.to(memory_format=torch.channels_last)
    if cfg.get("compile"):
        G.compile()
        if not cfg["gp"]:  # torch.compile has no double backward, which the penalty's gradient needs
            D.compile()


CHECKPOINT_KEYS = ["G", "D", "opt_g", "opt_d", "step", "rng", "cuda_rng", "seconds", "evals", "window", "window_n"]


class Trainer:
    """One GAN training run: the models, their optimisers, and a step that updates both."""

    def __init__(self, cfg, device):
        self.cfg, self.device = cfg, device
        self.G, self.D = rundir.build_models(cfg, device)
        tune_for_speed(self.G, self.D, cfg)
        self.opt_g, self.opt_d = build_optimizers(cfg, self.G, self.D)
        self.d_loss, self.g_loss = losses.make_loss(cfg["loss"], cfg["p"], cfg["minkowski_on"], 1.0 - cfg["label_smooth"])
        self.clipped = clipped_params(self.D, cfg["clip_params"]) if cfg["clip"] else []
        self.precision = cfg["precision"]
        self.step = 0

    def forward(self, net, x):
        """A forward pass of G or D, under --precision bfloat16 in autocast and cast back to float32:
        what the losses, the clipping, the penalty and Adam see is float32 (the fused ops get float32
        logits). float32 is the plain call, the same kernels as before the flag."""
        if self.precision == precision.DEFAULT:
            return net(x)
        with precision.autocast(self.precision, self.device):
            return net(x).float()

    def noise_std(self, total_steps):
        """Instance noise, annealed linearly from --instance-noise to 0 (Sonderby et al. 2017)."""
        return self.cfg["instance_noise"] * max(0.0, 1.0 - self.step / total_steps)

    def discriminator_step(self, real, fake, sigma):
        cfg = self.cfg
        real_in = real + sigma * torch.randn_like(real) if sigma else real
        fake_in = fake + sigma * torch.randn_like(fake) if sigma else fake
        logit_real, logit_fake = self.forward(self.D, real_in), self.forward(self.D, fake_in)
        loss_d = self.d_loss(logit_real, logit_fake)
        if cfg["gp"]:
            loss_d = loss_d + losses.gradient_penalty(self.D, losses.interpolate(real, fake), cfg["gp"], cfg["gp_center"])
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        norm_d = grad_norm(self.D)
        self.opt_d.step()
        if self.clipped:
            clip_weights(self.clipped, cfg["clip"])
        return loss_d.detach(), norm_d, logit_real.detach(), logit_fake.detach()

    def generator_step(self, fake, z, sigma):
        fake_in = fake + sigma * torch.randn_like(fake) if sigma else fake
        self.D.requires_grad_(False)  # G's step needs no gradients for D's weights
        loss_g = self.g_loss(self.forward(self.D, fake_in))
        if self.cfg["diversity"]:
            loss_g = loss_g + self.cfg["diversity"] * losses.mode_seeking(fake, z)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.D.requires_grad_(True)
        norm_g = grad_norm(self.G)
        self.opt_g.step()
        return loss_g.detach(), norm_g

    def train_step(self, batches, total_steps):
        """n_critic D updates, then one G update on the last critic step's fakes; the step's statistics on
        the device, in STEP_STATS' order (LOSS_STATS, then logit_stats' LOGIT_STATS)."""
        sigma = self.noise_std(total_steps)
        n_critic = self.cfg["n_critic"]
        for i in range(n_critic):
            real = to_input(batches.next())
            z = torch.randn(real.shape[0], self.cfg["z_dim"], device=self.device)
            with torch.set_grad_enabled(i == n_critic - 1):
                fake = self.forward(self.G, z)
            loss_d, norm_d, logit_real, logit_fake = self.discriminator_step(real, fake.detach(), sigma)
        loss_g, norm_g = self.generator_step(fake, z, sigma)
        self.step += 1
        return torch.cat([torch.stack([loss_d, loss_g, norm_d, norm_g]), self.logit_stats(logit_real, logit_fake)])

    def logit_stats(self, logit_real, logit_fake):
        """D's regime on the last critic step, in LOGIT_STATS' order: mean probabilities and logits, their
        spread, the largest |logit| and the share of clipped parameters at the bound. With tiny logits every loss of
        losses.py is WGAN times a constant (analysis/alignment.py), so these columns say which regime a run is in.
        Real and fake logits (one batch size) are reduced as the two rows of one tensor: one kernel per
        statistic, not two, and the same values (the float32 sigmoid's last bit aside)."""
        logits = torch.stack([logit_real.flatten(), logit_fake.flatten()])
        at_bound = share_at_bound(self.clipped, self.cfg["clip"]) if self.clipped else logits.new_zeros(())
        return torch.cat([torch.sigmoid(logits).mean(1), logits.mean(1), logits.std(1, correction=0),
                          torch.stack([logits.abs().amax(), at_bound])])

    def state(self, extra):
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "step": self.step, "rng": torch.get_rng_state(),
                "cuda_rng": cuda_rng_state(self.device), **extra}

    def load_state(self, ckpt, path):
        """Continue from a checkpoint, once it is checked to be of this run (names and shapes)."""
        rundir.check_checkpoint(ckpt, path, CHECKPOINT_KEYS, {"G": self.G, "D": self.D},
                                "resume the run it came from, or pass --overwrite to start again")
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_d.load_state_dict(ckpt["opt_d"])
        use_adam_options(self.opt_g)
        use_adam_options(self.opt_d)
        self.step = ckpt["step"]
        torch.set_rng_state(ckpt["rng"])
        restore_cuda_rng(ckpt.get("cuda_rng"), self.device)


def cuda_rng_state(device):
    """The training device's CUDA RNG state (None on the CPU): a checkpoint then resumes on any
    GPU of any node, whatever the number of GPUs visible there."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def restore_cuda_rng(state, device):
    """Restore cuda_rng_state's output on `device`. Older checkpoints hold a list of every visible
    GPU's state: the entry of the training device's index is used when there is one."""
    if device.type != "cuda" or state is None:
        return
    if isinstance(state, (list, tuple)):
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= len(state):
            return
        state = state[index]
    torch.cuda.set_rng_state(state, device)

