"""Chapter 8's grids on chapter 6's character model: QK-norm, placements and depth, DyT.

``python -m normlab.experiments frontier-qk`` (and ``frontier-placement``,
``frontier-dyt``) trains every configuration of one grid for a few hundred steps on one CPU
thread with fixed seeds and writes ``normlab/data/frontier_<grid>.json`` with provenance.
Besides the losses, each run records what the chapter's mechanism is about: the largest
attention logit, each block's output RMS, relative update and gradient norm (at
initialization and at the end), and DyT's α and saturation. ``frontier-depth`` trains
nothing: it records the per-layer profile at initialization for 2 to 32 layers.
"""

import argparse
import math
import time
from dataclasses import asdict, dataclass, replace

import torch

from normlab.dyt import DyT
from normlab.experiments.char_data import eval_batches, get_batch, load_dataset
from normlab.experiments.frontier_models import QK_NORMS, FrontierTransformer
from normlab.experiments.results import RESULTS_DIR, provenance, rounded, write_results
from normlab.experiments.training import evaluate


@dataclass(frozen=True)
class FrontierConfig:
    """One run; same seed ⇒ same initial weights (where shapes agree) and same batches."""

    norm: str = "rmsnorm"
    placement: str = "pre"
    qk_norm: str = "none"
    ln_scaling: bool = False
    lr: float = 3e-3
    steps: int = 150
    n_layers: int = 4
    train_chars: int | None = None  # None: the whole training text
    seed: int = 0
    batch_size: int = 16
    block_size: int = 64
    d_model: int = 64
    n_heads: int = 4
    probe_every: int = 10
    eval_batches: int = 8

    @property
    def name(self):
        lns = "+LNS" if self.ln_scaling else ""
        return (f"{self.norm}/{self.placement}{lns}/qk-{self.qk_norm}/lr{self.lr:g}"
                f"/L{self.n_layers}/seed{self.seed}")


def build_model(config, vocab_size):
    torch.manual_seed(config.seed)
    return FrontierTransformer(vocab_size, config.d_model, config.n_layers, config.n_heads,
                               config.block_size, norm=config.norm, placement=config.placement,
                               qk_norm=config.qk_norm, ln_scaling=config.ln_scaling)


def layer_profile(model, x, y):
    r"""Per block ``ℓ`` on one batch: ``rms`` of its output stream ``x_ℓ``, the relative
    update ``‖x_ℓ − x_{ℓ−1}‖/‖x_{ℓ−1}‖`` and ``‖∂L/∂W_out‖_F`` of its MLP output weight."""
    streams = []
    hooks = [b.register_forward_hook(lambda m, i, o: streams.append((i[0].detach(), o.detach())))
             for b in model.blocks]
    model.zero_grad(set_to_none=True)
    model(x, y)[1].backward()
    for h in hooks:
        h.remove()
    grads = [b.mlp.out.weight.grad.norm().item() for b in model.blocks]
    model.zero_grad(set_to_none=True)
    return {"rms": [rounded(o.pow(2).mean().sqrt().item()) for _, o in streams],
            "update": [rounded(((o - i).norm() / i.norm()).item()) for i, o in streams],
            "grad": [rounded(g) for g in grads]}


@torch.no_grad()
def dyt_state(model, x):
    """Per block's first DyT: ``α`` and the fraction of inputs with ``|αx| > 2``
    (``tanh`` > 0.96: saturated)."""
    seen = []
    hooks = [b.norm1.register_forward_hook(lambda m, i, o: seen.append((m.alpha.item(), i[0])))
             for b in model.blocks if isinstance(getattr(b, "norm1", None), DyT)]
    model(x)
    for h in hooks:
        h.remove()
    return {"alpha": [rounded(a) for a, _ in seen],
            "saturated": [rounded(((a * i).abs() > 2).float().mean().item()) for a, i in seen]}


def run(config, dataset=None):
    """Train ``config`` with AdamW (constant LR, no clipping, as chapter 6) and probe it."""
    dataset = dataset or load_dataset()
    train_ids = dataset.train if config.train_chars is None else dataset.train[:config.train_chars]
    model = build_model(config, dataset.vocab_size)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=0.0)
    gen = torch.Generator().manual_seed(config.seed)
    val = eval_batches(dataset.val, config.eval_batches, config.batch_size, config.block_size,
                       config.seed + 1)
    probe_x, probe_y = val[0]
    out = {"config": asdict(config), "train_loss": [], "probe_steps": [], "max_logit": [],
           "dyt": [], "diverged": False, "init": layer_profile(model, probe_x, probe_y)}
    for step in range(config.steps):
        x, y = get_batch(train_ids, config.batch_size, config.block_size, gen)
        loss = model(x, y)[1]
        out["train_loss"].append(rounded(loss.item()))
        if step % config.probe_every == 0:
            out["probe_steps"].append(step)
            out["max_logit"].append(rounded(max(b.attn.max_logit for b in model.blocks)))
            if config.norm == "dyt":
                out["dyt"].append(dyt_state(model, probe_x))
        if not math.isfinite(loss.item()):
            out["diverged"] = True
            return out
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    out["final"] = layer_profile(model, probe_x, probe_y)
    out["val_loss"] = rounded(evaluate(model, val))
    out["train_val_loss"] = rounded(evaluate(model, eval_batches(
        train_ids, config.eval_batches, config.batch_size, config.block_size, config.seed + 2)))
    return out


def init_run(config, dataset=None):
    """``run(config)["init"]`` without the training: the per-layer profile of the freshly
    initialised model on the same probe batch (``config.steps`` is not used)."""
    dataset = dataset or load_dataset()
    model = build_model(config, dataset.vocab_size)
    probe_x, probe_y = eval_batches(dataset.val, config.eval_batches, config.batch_size,
                                    config.block_size, config.seed + 1)[0]
    return {"config": asdict(config), "init": layer_profile(model, probe_x, probe_y)}


def select(grid, **match):
    """The runs of a committed ``grid`` whose config has every ``key=value`` of ``match``."""
    return [r for r in grid["runs"] if all(r["config"][k] == v for k, v in match.items())]


def spread(values):
    """``(min, max)`` of the values that are not ``None`` (a diverged run), or ``None``."""
    kept = [v for v in values if v is not None]
    return (min(kept), max(kept)) if kept else None


def final_loss(run, last=10):
    """Mean training loss of the last ``last`` steps; ``None`` for a diverged run."""
    return None if run["diverged"] else sum(run["train_loss"][-last:]) / last


def variant(config):
    """A short name for a placement-grid run: its placement, ``+LNS`` when scaled."""
    return config["placement"] + ("+LNS" if config["ln_scaling"] else "")


def blew_up(run):
    """Whether a run diverged (non-finite loss) or ended above the loss it started at."""
    return run["diverged"] or final_loss(run) > run["train_loss"][0]


def qk_summary(grid):
    """``{(lr, qk_norm): {"logit", "loss", "start": (min, max) over seeds, "diverged",
    "blew_up": counts}}``: the last recorded largest logit, the final and the first training
    loss, how many runs had a non-finite loss and how many :func:`blew_up`."""
    out = {}
    for lr in sorted({r["config"]["lr"] for r in grid["runs"]}):
        for qk in QK_NORMS:
            runs = select(grid, lr=lr, qk_norm=qk)
            out[lr, qk] = {"logit": spread([r["max_logit"][-1] for r in runs]),
                           "loss": spread([final_loss(r) for r in runs]),
                           "start": spread([r["train_loss"][0] for r in runs]),
                           "diverged": sum(r["diverged"] for r in runs),
                           "blew_up": sum(blew_up(r) for r in runs)}
    return out


def unigram_loss(ids):
    """Cross-entropy (nats/char) of predicting every character from its frequency in
    ``ids`` alone: what a model reaches that has learned nothing from the context."""
    counts = torch.bincount(torch.as_tensor(ids)).double()
    p = counts[counts > 0] / counts.sum()
    return -(p * p.log()).sum().item()


def profile_summary(grid):
    """``{(variant, "init"|"final"): {"rms", "grad", "update": (min, max)}}`` over seeds for
    the last block (``grad`` as last/first block's ratio), and ``(variant, "loss")``."""
    out = {}
    for name in dict.fromkeys(variant(r["config"]) for r in grid["runs"]):
        runs = [r for r in grid["runs"] if variant(r["config"]) == name and not r["diverged"]]
        for when in ("init", "final"):
            out[name, when] = {
                "rms": spread([r[when]["rms"][-1] for r in runs]),
                "grad": spread([r[when]["grad"][-1] / r[when]["grad"][0] for r in runs]),
                "update": spread([r[when]["update"][-1] for r in runs])}
        out[name, "loss"] = spread([final_loss(r) for r in grid["runs"]
                                    if variant(r["config"]) == name])
    return out


def depth_summary(grid):
    """``{(variant, n_layers): {"rms", "grad": (min, max)}}`` over seeds at initialization:
    the last block's stream RMS and the last/first block's gradient-norm ratio."""
    out = {}
    for r in grid["runs"]:
        out.setdefault((variant(r["config"]), r["config"]["n_layers"]), []).append(r["init"])
    return {key: {"rms": spread([p["rms"][-1] for p in profiles]),
                  "grad": spread([p["grad"][-1] / p["grad"][0] for p in profiles])}
            for key, profiles in out.items()}


def dyt_summary(grid):
    """``{(norm, train_chars): {"val", "train"[, "alpha", "saturated"]: (min, max)}}`` over
    seeds: validation loss, loss on the run's own training text, and for DyT the last block's
    α and saturated fraction at the last probe."""
    out = {}
    for chars in dict.fromkeys(r["config"]["train_chars"] for r in grid["runs"]):
        for norm in dict.fromkeys(r["config"]["norm"] for r in grid["runs"]):
            runs = select(grid, norm=norm, train_chars=chars)
            row = {"val": spread([r.get("val_loss") for r in runs]),
                   "train": spread([r.get("train_val_loss") for r in runs])}
            if norm == "dyt":
                row["alpha"] = spread([r["dyt"][-1]["alpha"][-1] for r in runs])
                row["saturated"] = spread([r["dyt"][-1]["saturated"][-1] for r in runs])
            out[norm, chars] = row
    return out


SEEDS = (0, 1, 2)
QK_LRS = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


def qk_grid():
    """Pre-norm RMSNorm model, 4 layers: QK-norm none / per head / whole projection × LR
    (up to 1, where every variant blows up)."""
    return [FrontierConfig(qk_norm=qk, lr=lr, seed=s)
            for lr in QK_LRS for qk in QK_NORMS for s in SEEDS[:2]]


# post, DeepNorm, pre, pre + LayerNorm Scaling, peri, OLMo 2
VARIANTS = ({"placement": "post"}, {"placement": "deepnorm"}, {"placement": "pre"},
            {"placement": "pre", "ln_scaling": True}, {"placement": "peri"},
            {"placement": "olmo2"})
DEPTHS = (2, 4, 8, 16, 32)


def placement_grid():
    """8 layers, RMSNorm: post, DeepNorm, pre, pre + LayerNorm Scaling, peri, OLMo 2."""
    base = FrontierConfig(n_layers=8, steps=100)
    return [replace(base, seed=s, **v) for v in VARIANTS for s in SEEDS]


def depth_grid():
    """The placement grid's six variants at 2–32 layers, at initialization only."""
    return [FrontierConfig(n_layers=n, steps=0, seed=s, **v)
            for n in DEPTHS for v in VARIANTS for s in SEEDS]


def dyt_grid():
    """LayerNorm vs DyT (pre-norm) on the whole text and on its first 10 000 characters."""
    return [FrontierConfig(norm=n, train_chars=c, seed=s)
            for c in (None, 10_000) for n in ("layernorm", "dyt") for s in SEEDS[:2]]


GRIDS = {"frontier-qk": qk_grid, "frontier-placement": placement_grid, "frontier-dyt": dyt_grid,
         "frontier-depth": depth_grid}
RUNNERS = {"frontier-depth": init_run}  # every other grid trains: run()


def run_grid(name, argv=(), progress=True):
    """Every run of grid ``name`` with provenance and the wall time the grid took."""
    from tqdm.auto import tqdm

    dataset, start = load_dataset(), time.perf_counter()
    runner = RUNNERS.get(name, run)
    runs = [runner(c, dataset) for c in tqdm(GRIDS[name](), desc=name, disable=not progress)]
    return {"provenance": provenance(list(argv)), "grid": name,
            "wall_seconds": round(time.perf_counter() - start, 1), "runs": runs}


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m normlab.experiments", description=__doc__)
    parser.add_argument("grid", choices=list(GRIDS))
    parser.add_argument("--out", help="default: normlab/data/frontier_<grid>.json")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one reduction order: a rerun reproduces the losses
    out = args.out or RESULTS_DIR / f"{args.grid.replace('-', '_')}.json"
    write_results(out, run_grid(args.grid, argv, progress=not args.no_progress))
