"""A denoising diffusion model (DDPM) small enough to train on this CPU: 8×8 digits and 2-D toy points.

Ho, Jain & Abbeel (2020), *Denoising Diffusion Probabilistic Models*: a fixed **forward process** adds Gaussian noise
over ``T`` steps, ``q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)``; a network ``ε_θ(x_t, t)`` learns to predict the added
noise (loss ``‖ε − ε_θ‖²``); the **reverse process** starts from pure noise and removes a little of it at each step
with the posterior ``q(x_{t−1} | x_t, x̂_0)``. Class guidance is classifier-free (Ho & Salimans, 2022): the same
network is trained with the label dropped 10 % of the time and sampling mixes both predictions.

Schedule and sampler: our own (about 40 lines, :class:`Schedule`), tested against the paper's formulas with
hand-computed numbers. ``diffusers.DDPMScheduler`` (0.42.1) does the same job, but measured here, in a process that
already had torch and transformers imported, ``from diffusers import DDPMScheduler`` plus building one took 2.5 s
(5.3 s on a cold disk) and +97 MB of resident memory: twice this page's whole memory budget for its models, for
arithmetic this file does in a few lines. Its timestep convention (0-based, ``t = T−1`` the noisiest) is the one used
here, so the formulas line up one to one.

Everything is seeded and runs on the CPU in float32. No Streamlit here.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from engine import threads

#: Diffusion steps. 100 (not the paper's 1,000) keeps sampling to a fraction of a second; the linear schedule is
#: rescaled so the last step is still almost pure noise (√ᾱ_T ≈ 0.006).
STEPS = 100
#: Label index meaning "no class" (the unconditional half of classifier-free guidance).
NULL_CLASS = 10
DIGIT_PIXELS = 64  # 8×8
#: Largest / smallest custom 2-D point sets accepted (a drawing of 10,000 points is refused with a message).
MAX_POINTS = 2000
MIN_POINTS = 20
TOY_SHAPES = ("two moons", "spiral", "rings")


@contextlib.contextmanager
def one_thread():
    """Run torch on one intra-op thread in this thread only (OpenMP settings are per thread; restored after).

    These networks are tiny: measured here, 100 guided samples took 0.8 s of CPU on one thread and 17 s of CPU on
    two (the threads spend their time waiting on each other), and two requests can then use both cores side by side.
    """
    with threads.intra_op_threads(1):  # not torch.set_num_threads: that would leak into threads started meanwhile
        yield


# ------------------------------------------------------------------------------------------------ noise schedule
@dataclass(frozen=True)
class Schedule:
    """The DDPM linear noise schedule and its derived quantities (all shape ``[T]``, index ``t = 0 … T−1``).

    Attributes:
        betas: β_t, the noise variance added at step t.
        alphas: α_t = 1 − β_t.
        alpha_bars: ᾱ_t = ∏_{s≤t} α_s: how much of x_0 survives in x_t (signal variance).
        posterior_variance: β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), the variance of q(x_{t−1} | x_t, x_0).
    """

    betas: torch.Tensor
    alphas: torch.Tensor = field(init=False)
    alpha_bars: torch.Tensor = field(init=False)
    posterior_variance: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        alphas = 1.0 - self.betas  # [T]
        alpha_bars = torch.cumprod(alphas, 0)  # [T]
        prev = torch.cat([torch.ones(1, dtype=alphas.dtype), alpha_bars[:-1]])  # [T] ᾱ_{t−1}, with ᾱ_{−1} = 1
        object.__setattr__(self, "alphas", alphas)
        object.__setattr__(self, "alpha_bars", alpha_bars)
        object.__setattr__(self, "posterior_variance", self.betas * (1 - prev) / (1 - alpha_bars))

    @property
    def steps(self) -> int:
        return int(self.betas.shape[0])

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        """Jump straight to step t of the forward process: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε.

        Args:
            x0: Clean data ``[N, D]``.
            t: Step per row ``[N]`` (or one int for all rows), 0-based.
            noise: ε ~ N(0, I), ``[N, D]``.
        """
        ab = self.alpha_bars[torch.as_tensor(t)]
        ab = ab.reshape(-1, 1) if ab.ndim else ab  # [N, 1] (one per row) or a scalar
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise  # [N, D]

    def predict_x0(self, xt: torch.Tensor, t: int, eps: torch.Tensor) -> torch.Tensor:
        """Invert the forward jump with the predicted noise: x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t."""
        ab = float(self.alpha_bars[t])
        return (xt - math.sqrt(1 - ab) * eps) / math.sqrt(ab)

    def posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: int) -> tuple[torch.Tensor, float]:
        """Mean and variance of q(x_{t−1} | x_t, x_0) (DDPM eq. 7).

        μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t,  β̃_t as in the attributes.
        """
        ab, beta = float(self.alpha_bars[t]), float(self.betas[t])
        ab_prev = float(self.alpha_bars[t - 1]) if t > 0 else 1.0
        c0 = math.sqrt(ab_prev) * beta / (1 - ab)
        ct = math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
        return c0 * x0 + ct * xt, float(self.posterior_variance[t])


def linear_schedule(steps: int = STEPS, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """The paper's linear β schedule (1e-4 … 0.02 over 1,000 steps), rescaled by 1000/steps for fewer steps."""
    scale = 1000 / steps
    return Schedule(torch.linspace(beta_start * scale, beta_end * scale, steps, dtype=torch.float64).float())


# ------------------------------------------------------------------------------------------------ data
def digits_data() -> tuple[torch.Tensor, np.ndarray]:
    """scikit-learn's 1,797 bundled 8×8 digits, grey levels 0…16 scaled to [−1, 1].

    Returns:
        Images ``[1797, 64]`` float32 and their labels ``[1797]`` (0…9).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.data / 8.0 - 1.0, dtype=torch.float32), d.target.astype(np.int64)


def to_grey(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Model space [−1, 1] → scikit-learn's 0…16 grey levels (clipped), ``[N, 64]``."""
    x = x.detach().numpy() if torch.is_tensor(x) else np.asarray(x)
    return np.clip((x + 1.0) * 8.0, 0.0, 16.0)


def toy_data(shape: str, n: int = 1000, seed: int = 0) -> torch.Tensor:
    """A 2-D toy data set, roughly centred and scaled to unit spread: ``[n, 2]``.

    Args:
        shape: One of :data:`TOY_SHAPES`.
        n: Number of points.
        seed: Random seed (the same seed gives the same points).
    """
    rng = np.random.default_rng(seed)
    if shape == "two moons":
        from sklearn.datasets import make_moons

        pts, _ = make_moons(n, noise=0.05, random_state=seed)
        pts = (pts - [0.5, 0.25]) / [0.9, 0.5]
    elif shape == "spiral":
        r = np.sqrt(rng.uniform(0.05, 1.0, n))  # even density along the arm
        a = 3.5 * math.pi * r
        pts = np.stack([r * np.cos(a), r * np.sin(a)], 1) * 1.6 + rng.normal(0, 0.03, (n, 2))
    elif shape == "rings":
        ring = rng.integers(0, 2, n)
        a = rng.uniform(0, 2 * math.pi, n)
        rad = np.where(ring == 0, 0.6, 1.5)
        pts = np.stack([rad * np.cos(a), rad * np.sin(a)], 1) + rng.normal(0, 0.04, (n, 2))
    else:
        raise ValueError(f"shape must be one of {TOY_SHAPES}")
    return torch.tensor(pts, dtype=torch.float32)


def parse_points(text: str) -> tuple[torch.Tensor | None, str]:
    """Read learner-typed 2-D points, one ``x, y`` pair per line, and scale them to unit spread.

    Returns:
        ``(points [N, 2], "")`` when usable, else ``(None, message)`` saying what is wrong (no points, too many,
        unreadable lines).
    """
    rows, bad = [], 0
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        parts = line.replace(";", ",").replace("\t", ",").replace(" ", ",").split(",")
        try:
            x, y = (float(p) for p in parts if p)
        except ValueError:
            bad += 1
            continue
        if math.isfinite(x) and math.isfinite(y):
            rows.append((x, y))
        else:
            bad += 1
    if len(rows) > MAX_POINTS:
        return None, f"{len(rows):,} points is too many to train on here: give at most {MAX_POINTS:,}."
    if len(rows) < MIN_POINTS:
        extra = f" ({bad} line(s) could not be read as 'x, y')" if bad else ""
        return None, f"{len(rows)} usable point(s){extra}: give at least {MIN_POINTS}, one 'x, y' pair per line."
    pts = torch.tensor(rows, dtype=torch.float32)  # [N, 2]
    spread = float(pts.std(0).max())
    pts = (pts - pts.mean(0)) / (spread if spread > 1e-9 else 1.0)
    return pts, (f"{bad} line(s) could not be read and were skipped." if bad else "")


# ------------------------------------------------------------------------------------------------ the network
def timestep_embedding(t: torch.Tensor, dim: int, steps: int = STEPS) -> torch.Tensor:
    """Sinusoidal embedding of the step (as Transformer positions): ``[N]`` → ``[N, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32) / half)  # [dim/2]
    angle = (t.float() * (1000.0 / steps)).unsqueeze(1) * freqs  # [N, dim/2]
    return torch.cat([angle.sin(), angle.cos()], 1)  # [N, dim]


class Denoiser(nn.Module):
    """ε_θ(x_t, t, y): an MLP that predicts the noise in ``x_t`` from the noisy data, the step and the class.

    Args:
        dim: Data dimension (64 for an 8×8 digit, 2 for a toy point).
        hidden: Width of the hidden layers.
        layers: Number of hidden blocks.
        classes: Number of classes (0: unconditional; else one extra "no class" label for guidance).
    """

    def __init__(self, dim: int, hidden: int, layers: int, classes: int = 0):
        super().__init__()
        self.dim, self.hidden, self.n_layers, self.classes = dim, hidden, layers, classes
        self.t_dim = 64
        self.inp = nn.Linear(dim, hidden)
        self.t_proj = nn.Sequential(nn.Linear(self.t_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.y_emb = nn.Embedding(classes + 1, hidden) if classes else None
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(layers)
        )
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``x [N, dim]``, ``t [N]`` (0-based steps), ``y [N]`` (class or :data:`NULL_CLASS`) → ε̂ ``[N, dim]``."""
        cond = self.t_proj(timestep_embedding(t, self.t_dim))  # [N, H]
        if self.y_emb is not None:
            cond = cond + self.y_emb(y if y is not None else torch.full_like(t, self.classes))  # [N, H]
        h = self.inp(x) + cond  # [N, H]
        for block in self.blocks:
            h = h + block(h + cond)  # residual MLP blocks, step and class added to every block's input
        return self.out(h)  # [N, dim]

    def config(self) -> dict:
        return {"dim": self.dim, "hidden": self.hidden, "layers": self.n_layers, "classes": self.classes}


# ------------------------------------------------------------------------------------------------ training
@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the same config and seed give the same model on this machine)."""

    kind: str  # "digits" or "toy"
    steps: int
    hidden: int
    layers: int
    batch: int
    lr: float
    seed: int = 0
    label_drop: float = 0.1  # classifier-free guidance: share of examples trained without their class


DIGITS_CONFIG = TrainConfig("digits", steps=1500, hidden=256, layers=3, batch=128, lr=2e-3)
TOY_CONFIG = TrainConfig("toy", steps=1000, hidden=128, layers=3, batch=256, lr=3e-3)


@dataclass
class TrainedModel:
    """A trained denoiser with its schedule, the loss after each training step, and how long training took."""

    net: Denoiser
    schedule: Schedule
    losses: list[float]
    seconds: float
    config: TrainConfig | None = None

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    @property
    def parameter_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.net.parameters())


def train(
    config: TrainConfig,
    data: torch.Tensor,
    labels: np.ndarray | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    schedule: Schedule | None = None,
) -> TrainedModel:
    """Train ε_θ with the DDPM "simple" loss: pick a step t, noise the data, predict the noise, minimise ‖ε − ε̂‖².

    Args:
        config: Sizes, steps, learning rate and seed.
        data: Clean training data ``[N, D]``.
        labels: Class of each row ``[N]`` (trains a class-conditional model with guidance), or None.
        progress: Called as ``progress(step, total, mean loss of the last 50 steps)`` every 50 steps and at the
            end (no Streamlit here: the caller decides how to show it).
        schedule: Noise schedule (default: :func:`linear_schedule`).

    Returns:
        The :class:`TrainedModel` (in eval mode).
    """
    with one_thread():
        return _train(config, data, labels, progress, schedule or linear_schedule())


def _train(config: TrainConfig, data: torch.Tensor, labels, progress, schedule: Schedule) -> TrainedModel:
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # the initial weights
    classes = 10 if labels is not None else 0
    net = Denoiser(data.shape[1], config.hidden, config.layers, classes)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps, pct_start=0.1)
    y_all = torch.as_tensor(labels) if labels is not None else None
    n, losses, start = data.shape[0], [], time.perf_counter()
    for step in range(config.steps):
        idx = torch.randint(0, n, (config.batch,), generator=gen)  # [B]
        x0 = data[idx]  # [B, D]
        t = torch.randint(0, schedule.steps, (config.batch,), generator=gen)  # [B]
        eps = torch.randn(x0.shape, generator=gen)  # [B, D]
        xt = schedule.q_sample(x0, t, eps)  # [B, D]
        y = None
        if y_all is not None:
            drop = torch.rand(config.batch, generator=gen) < config.label_drop  # [B]
            y = torch.where(drop, torch.full_like(idx, NULL_CLASS), y_all[idx])  # [B]
        loss = torch.mean((net(xt, t, y) - eps) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if progress is not None and ((step + 1) % 50 == 0 or step + 1 == config.steps):
            progress(step + 1, config.steps, float(np.mean(losses[-50:])))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return TrainedModel(net, schedule, losses, time.perf_counter() - start, config)


def smooth(values: list[float], window: int = 50) -> list[float]:
    """Mean over consecutive windows of ``window`` steps (the loss of single steps is very noisy)."""
    return [float(np.mean(values[i : i + window])) for i in range(0, len(values), window)]


# ------------------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(model: TrainedModel, path) -> None:
    """Save weights (safetensors) plus config and loss curve in the file's metadata."""
    import json

    from safetensors.torch import save_file

    meta = {
        "net": json.dumps(model.net.config()),
        "train": json.dumps(model.config.__dict__ if model.config else {}),
        "losses": json.dumps(smooth(model.losses)),
        "seconds": f"{model.seconds:.2f}",
        "steps": str(model.schedule.steps),
    }
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, str(path), metadata=meta)


def load_checkpoint(path) -> TrainedModel:
    """Load a :func:`save_checkpoint` file. ``losses`` then holds the smoothed curve (one value per 50 steps)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    net = Denoiser(**json.loads(meta["net"]))
    net.load_state_dict(load_file(str(path)))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    train_cfg = json.loads(meta["train"])
    return TrainedModel(
        net, linear_schedule(int(meta["steps"])), json.loads(meta["losses"]), float(meta["seconds"]),
        TrainConfig(**train_cfg) if train_cfg else None,
    )


# ------------------------------------------------------------------------------------------------ forward process
def forward_frames(schedule: Schedule, x0: torch.Tensor, steps: list[int], seed: int = 0) -> torch.Tensor:
    """One clean example noised to each of ``steps`` with the same ε (so the frames show one noise growing).

    Args:
        x0: One example ``[D]``.
        steps: Steps counted as in the paper: 0 is the clean example, t = 1 … T the noisy ones.

    Returns:
        ``[len(steps), D]``.
    """
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))  # [D]
    t = torch.tensor([max(0, s - 1) for s in steps])  # [S] 0-based index of each noisy step
    out = schedule.q_sample(x0.expand(len(steps), -1), t, eps.expand(len(steps), -1))  # [S, D]
    out[torch.tensor(steps) == 0] = x0  # step 0: the untouched example
    return out


def mixing_weights(schedule: Schedule) -> tuple[list[float], list[float]]:
    """√ᾱ_t (weight of the clean example) and √(1 − ᾱ_t) (weight of the noise) for t = 0 … T (t = 0: clean)."""
    ab = torch.cat([torch.ones(1), schedule.alpha_bars])  # [T+1]
    return ab.sqrt().tolist(), (1 - ab).sqrt().tolist()


@dataclass(frozen=True)
class NoiseCheck:
    """Statistics of x_t over a whole data set: is it still data, or plain N(0, 1) noise?"""

    step: int
    signal_kept: float  # √ᾱ_t
    mean: float  # mean of all values of x_t
    std: float  # their standard deviation
    corr_with_x0: float  # correlation between x_t and x_0 across all values


def noise_check(schedule: Schedule, data: torch.Tensor, step: int, seed: int = 0) -> NoiseCheck:
    """Noise every row of ``data`` ``[N, D]`` to ``step`` and measure how close x_t is to unit-variance noise."""
    eps = torch.randn(data.shape, generator=torch.Generator().manual_seed(seed))  # [N, D]
    xt = schedule.q_sample(data, torch.full((data.shape[0],), step), eps)  # [N, D]
    corr = float(torch.corrcoef(torch.stack([xt.flatten(), data.flatten()]))[0, 1])
    return NoiseCheck(step, math.sqrt(float(schedule.alpha_bars[step])), float(xt.mean()), float(xt.std()), corr)


# ------------------------------------------------------------------------------------------------ reverse process
@dataclass(frozen=True)
class Sampled:
    """A reverse-process run.

    Attributes:
        path: ``[T+1, N, D]``: ``path[0]`` is the starting noise x_T, ``path[k]`` is x after k denoising steps,
            ``path[T]`` the final sample x_0.
        x0_pred: ``[T, N, D]``: the model's guess of the final image at each step (x̂_0).
        seeds: One seed per sample.
    """

    path: torch.Tensor
    x0_pred: torch.Tensor
    seeds: tuple[int, ...]

    @property
    def final(self) -> torch.Tensor:
        return self.path[-1]  # [N, D]


@torch.no_grad()
def sample(
    model: TrainedModel,
    seeds: list[int] | tuple[int, ...],
    digit: int | list[int] | tuple[int, ...] | None = None,
    guidance: float = 1.0,
    clip: float | None = 1.0,
) -> Sampled:
    """Run the reverse process from pure noise, one sample per seed (a sample depends only on its own seed).

    Classifier-free guidance: ε̂ = ε̂(x, t, ∅) + w · (ε̂(x, t, digit) − ε̂(x, t, ∅)). w = 0 ignores the digit, w = 1 is
    the plain class-conditional model, w > 1 pushes harder towards the digit.

    Args:
        model: A trained model (class-conditional if ``digit`` is given).
        seeds: One seed per sample; each draws its own starting noise and its own per-step noise.
        digit: Class to draw (0…9), one class per seed, or None for unconditional.
        guidance: w above.
        clip: Clip x̂_0 to ±clip before the posterior step (images live in [−1, 1]); None for no clipping.

    Returns:
        A :class:`Sampled` with the whole path.
    """
    with one_thread():
        return _sample(model, seeds, digit, guidance, clip)


def _sample(model: TrainedModel, seeds, digit, guidance: float, clip: float | None) -> Sampled:
    sch, net = model.schedule, model.net
    T, D, N = sch.steps, net.dim, len(seeds)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    x = torch.stack([torch.randn(D, generator=g) for g in gens])  # [N, D] x_T
    noise = torch.stack([torch.randn(T, D, generator=g) for g in gens], 1)  # [T, N, D] per-step noise, per seed
    path, preds = [x], []
    use_class = digit is not None and net.classes > 0
    if not use_class:
        y_c = torch.full((N,), NULL_CLASS)
    elif isinstance(digit, (list, tuple)):
        y_c = torch.tensor([int(d) for d in digit])  # [N] one class per seed
    else:
        y_c = torch.full((N,), int(digit))
    y_u = torch.full((N,), NULL_CLASS)
    for k, t in enumerate(range(T - 1, -1, -1)):
        tt = torch.full((N,), t)
        if use_class and guidance != 0:
            both = net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y_c, y_u]))  # [2N, D]
            eps_c, eps_u = both[:N], both[N:]
            eps = eps_u + guidance * (eps_c - eps_u)  # [N, D]
        else:
            eps = net(x, tt, y_u if net.classes else None)  # [N, D]
        x0 = sch.predict_x0(x, t, eps)  # [N, D]
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        mean, var = sch.posterior(x0, x, t)
        x = mean + math.sqrt(var) * noise[k] if t > 0 else mean  # no noise on the last step
        path.append(x)
        preds.append(x0)
    return Sampled(torch.stack(path), torch.stack(preds), tuple(int(s) for s in seeds))


@torch.no_grad()
def denoise_field(model: TrainedModel, step: int, lim: float = 2.5, n: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """The learned denoising direction of a 2-D model on a grid: where the model would move each point.

    At step t the model's estimate of the clean point is x̂_0 = (x − √(1−ᾱ_t) ε̂) / √ᾱ_t; the arrow is the
    direction −ε̂ / √(1−ᾱ_t), which is the learned score ∇ log p_t(x) (Song & Ermon), scaled to at most one grid cell.

    Returns:
        Grid points ``[n², 2]`` and arrows ``[n², 2]``.
    """
    with one_thread():
        return _denoise_field(model, step, lim, n)


@torch.no_grad()
def _denoise_field(model: TrainedModel, step: int, lim: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    ax = torch.linspace(-lim, lim, n)
    gx, gy = torch.meshgrid(ax, ax, indexing="xy")
    pts = torch.stack([gx.flatten(), gy.flatten()], 1)  # [n², 2]
    eps = model.net(pts, torch.full((pts.shape[0],), step))  # [n², 2]
    score = -eps / math.sqrt(1 - float(model.schedule.alpha_bars[step]))  # [n², 2] ∇ log p_t
    cell = 2 * lim / (n - 1)
    length = score.norm(dim=1, keepdim=True)  # [n², 1]
    arrows = score / length.max().clamp_min(1e-9) * cell * 0.9
    return pts.numpy(), arrows.numpy()


# ------------------------------------------------------------------------------------------------ quality checks
def digit_classifier(seed: int = 0):
    """A classifier trained on real digits only (scikit-learn SVC on 0…16 grey levels), and its held-out accuracy.

    Returns:
        ``(classifier, accuracy on a 25 % held-out split of real digits)``; the returned classifier is then refit on
        all 1,797 digits.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    d = load_digits()
    xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.25, random_state=seed, stratify=d.target)
    held_out = float(SVC(gamma=0.001).fit(xtr, ytr).score(xte, yte))
    return SVC(gamma=0.001).fit(d.data, d.target), held_out


@dataclass(frozen=True)
class Recognition:
    """How a classifier trained on real digits reads generated ones."""

    predicted: tuple[int, ...]  # the classifier's label for each generated digit
    wanted: tuple[int, ...]  # the digit each one was asked for
    rate: float  # share recognised as the digit asked for

    @property
    def chance(self) -> float:
        return 0.1

    def per_class(self) -> dict[int, tuple[int, int]]:
        """Digit → (recognised, generated)."""
        out: dict[int, tuple[int, int]] = {}
        for p, w in zip(self.predicted, self.wanted):
            hit, n = out.get(w, (0, 0))
            out[w] = (hit + (p == w), n + 1)
        return dict(sorted(out.items()))


def recognise(classifier, images: torch.Tensor, wanted: list[int]) -> Recognition:
    """Classify generated images ``[N, 64]`` (model space) and compare with the digits asked for."""
    pred = classifier.predict(to_grey(images))
    hits = float(np.mean(pred == np.asarray(wanted))) if len(wanted) else 0.0
    return Recognition(tuple(int(p) for p in pred), tuple(int(w) for w in wanted), hits)


@dataclass(frozen=True)
class Nearest:
    """For each generated digit: the closest training digit and the distance to it (RMS per pixel, model space)."""

    index: tuple[int, ...]
    distance: tuple[float, ...]
    #: Typical distance from a real digit to its closest *other* training digit, for comparison.
    real_to_real: float

    @property
    def median_distance(self) -> float:
        """Median distance from a generated digit to its closest training digit."""
        return float(np.median(self.distance)) if self.distance else float("nan")


def nearest_training(images: torch.Tensor, data: torch.Tensor) -> Nearest:
    """Nearest training image to each generated one (``[N, 64]`` vs ``[M, 64]``), with a real-vs-real baseline."""
    d = torch.cdist(images, data) / math.sqrt(data.shape[1])  # [N, M] RMS difference per pixel
    dist, idx = d.min(1)
    rr = torch.cdist(data, data) / math.sqrt(data.shape[1])  # [M, M]
    rr.fill_diagonal_(float("inf"))
    return Nearest(tuple(int(i) for i in idx), tuple(float(v) for v in dist), float(rr.min(1).values.median()))


# ------------------------------------------------------------------------------------------------ the page's models
#: Checkpoints written by ``scripts/train_diffusion.py`` (same code, same seeds, bundled data only).
CHECKPOINT_DIR = __import__("pathlib").Path(__file__).resolve().parent / "checkpoints"


def checkpoint_path(name: str):
    """Where the shipped checkpoint ``name`` ("digits" or a toy shape) lives."""
    return CHECKPOINT_DIR / f"diffusion_{name.replace(' ', '_')}.safetensors"


def train_digits(progress=None, config: TrainConfig | None = None) -> TrainedModel:
    """Train the class-conditional digits model on all 1,797 bundled digits (default :data:`DIGITS_CONFIG`)."""
    x, y = digits_data()
    return train(config or DIGITS_CONFIG, x, y, progress)


def train_toy(shape: str, progress=None, points: torch.Tensor | None = None, config: TrainConfig | None = None):
    """Train an unconditional 2-D model on a toy shape (1,000 points) or on the learner's ``points`` ``[N, 2]``
    (default :data:`TOY_CONFIG`)."""
    data = points if points is not None else toy_data(shape)
    return train(config or TOY_CONFIG, data, None, progress)
