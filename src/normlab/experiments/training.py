"""Chapter 6 experiments: gradient norms at initialization and the training grid.

Run ``python -m normlab.experiments grad-norms``, ``train-grid``, ``seed-spread`` and
``step-times``; each writes a JSON file with provenance (device, versions, CPU, date,
configuration) into ``normlab/data/``, where the chapter reads it
(:mod:`normlab.experiments.results`).
Everything runs on one CPU thread with fixed seeds, so a rerun reproduces the losses.
"""

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass, replace

import torch

from normlab.experiments.char_data import eval_batches, get_batch, load_dataset
from normlab.experiments.models import TinyTransformer
from normlab.experiments.results import RESULTS_DIR, provenance, rounded, write_results


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Same seed ⇒ same initial weights and same batches for every config."""

    norm: str = "layernorm"
    placement: str = "pre"
    warmup_steps: int = 0
    lr: float = 3e-3
    steps: int = 300
    batch_size: int = 16
    block_size: int = 64
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    seed: int = 0
    eval_interval: int = 25
    eval_batches: int = 8

    @property
    def name(self):
        warm = f"warmup{self.warmup_steps}" if self.warmup_steps else "no-warmup"
        return f"{self.norm}/{self.placement}/{warm}"


def build_model(config, vocab_size):
    """A :class:`TinyTransformer` for ``config``, initialised from ``config.seed``."""
    torch.manual_seed(config.seed)
    return TinyTransformer(vocab_size, config.d_model, config.n_layers, config.n_heads,
                           config.block_size, config.norm, config.placement)


def lr_at(step, lr, warmup_steps):
    r"""Linear warm-up, then constant: :math:`\eta_t = \eta\,\min(1, (t+1)/W)`."""
    return lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps else lr


@torch.no_grad()
def evaluate(model, batches):
    """Mean cross-entropy (nats per character) of ``model`` over fixed ``batches``."""
    model.eval()
    loss = sum(model(x, y)[1].item() for x, y in batches) / len(batches)
    model.train()
    return loss


def train(config, dataset=None, progress=True):
    """Train one configuration with AdamW; return losses, validation curve and step times.

    No gradient clipping and no LR decay, so what the norm and warm-up do is not masked.
    A run whose loss becomes non-finite stops and is reported as diverged.
    """
    from tqdm.auto import tqdm

    dataset = dataset or load_dataset()
    model = build_model(config, dataset.vocab_size)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.98),
                            weight_decay=0.0)
    gen = torch.Generator().manual_seed(config.seed)
    val = eval_batches(dataset.val, config.eval_batches, config.batch_size,
                       config.block_size, config.seed + 1)
    out = {"config": asdict(config), "train_loss": [], "val_steps": [], "val_loss": [],
           "step_seconds": [], "diverged": False}
    for step in tqdm(range(config.steps), desc=config.name, disable=not progress, leave=False):
        if step % config.eval_interval == 0:
            _record_val(out, step, evaluate(model, val))
        x, y = get_batch(dataset.train, config.batch_size, config.block_size, gen)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config.lr, config.warmup_steps)
        start = time.perf_counter()
        loss = model(x, y)[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out["step_seconds"].append(time.perf_counter() - start)
        out["train_loss"].append(rounded(loss.item()))
        if not math.isfinite(loss.item()):
            out["diverged"] = True
            return out
    _record_val(out, config.steps, evaluate(model, val))
    return out


def _record_val(out, step, loss):
    out["val_steps"].append(step)
    out["val_loss"].append(rounded(loss))


def grid_configs(base, norms=("layernorm", "rmsnorm", "none"),
                 placements=("post", "pre", "sandwich"), warmups=(0, 100)):
    """The norm × placement × warm-up grid. With ``norm="none"`` every placement is the same
    network, so it appears once (as "pre")."""
    return [replace(base, norm=n, placement=p, warmup_steps=w)
            for n in norms for p in placements for w in warmups
            if not (n == "none" and p != "pre")]


def grad_norms_at_init(norm, placement, depth, seed=0, batch_size=16, block_size=64,
                       d_model=64, dataset=None):
    r"""Per-layer :math:`\lVert \partial L / \partial W_2^{(l)} \rVert_F` at initialization.

    :math:`W_2^{(l)}` is the output weight of layer ``l``'s MLP, the quantity Xiong et al.
    (2020, Fig. 3) track; one batch of real text, loss = cross-entropy. Returns a list of
    ``depth`` floats (layer 1 first).
    """
    dataset = dataset or load_dataset()
    config = TrainConfig(norm=norm, placement=placement, n_layers=depth, d_model=d_model,
                         block_size=block_size, seed=seed)
    model = build_model(config, dataset.vocab_size)
    x, y = get_batch(dataset.train, batch_size, block_size, torch.Generator().manual_seed(seed))
    model(x, y)[1].backward()
    return [block.mlp.out.weight.grad.norm().item() for block in model.blocks]


def step_times(configs, repeats=5, steps=5, dataset=None):
    """Milliseconds per training step (forward, backward, AdamW) for each config.

    Configs are timed round-robin, ``repeats`` times ``steps`` steps each, and the fastest
    repeat is kept: on a shared machine the minimum is the least disturbed estimate.
    """
    dataset = dataset or load_dataset()
    gen = torch.Generator().manual_seed(0)
    x, y = get_batch(dataset.train, configs[0].batch_size, configs[0].block_size, gen)
    setups = []
    for config in configs:
        model = build_model(config, dataset.vocab_size)
        setups.append((model, torch.optim.AdamW(model.parameters(), lr=config.lr)))
    best = [math.inf] * len(configs)
    for _ in range(repeats):
        for i, (model, opt) in enumerate(setups):
            start = time.perf_counter()
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                model(x, y)[1].backward()
                opt.step()
            best[i] = min(best[i], 1e3 * (time.perf_counter() - start) / steps)
    return best


def run_grad_norms(args, argv):
    from tqdm.auto import tqdm

    dataset = load_dataset()
    configs = [(n, p) for n in ("layernorm", "rmsnorm") for p in ("post", "pre", "sandwich")]
    configs.append(("none", "pre"))
    runs = []
    for depth in tqdm(args.depths, desc="depths"):
        for norm, placement in configs:
            norms = grad_norms_at_init(norm, placement, depth, args.seed, dataset=dataset)
            runs.append({"norm": norm, "placement": placement, "depth": depth,
                         "grad_norm": [rounded(g) for g in norms]})
    write_results(args.out, {"provenance": provenance(argv), "seed": args.seed, "runs": runs})


def run_train_grid(args, argv):
    base = TrainConfig(lr=args.lr, steps=args.steps, seed=args.seed)
    dataset = load_dataset()
    runs = []
    for config in grid_configs(base, warmups=(0, args.warmup)):
        result = train(config, dataset, progress=not args.no_progress)
        times = sorted(result.pop("step_seconds"))
        result["median_step_ms"] = rounded(1e3 * times[len(times) // 2])
        print(f"{config.name:32s} final val {result['val_loss'][-1]}  "
              f"diverged={result['diverged']}  {result['median_step_ms']} ms/step")
        runs.append(result)
    write_results(args.out, {"provenance": provenance(argv), "base_config": asdict(base),
                             "runs": runs})


def run_seed_spread(args, argv):
    """The same configuration trained from several seeds (initial weights and batches)."""
    base = TrainConfig(lr=args.lr, steps=args.steps, norm=args.norm)
    dataset = load_dataset()
    runs = []
    for placement in args.placements:
        for seed in args.seeds:
            config = replace(base, placement=placement, seed=seed)
            result = train(config, dataset, progress=not args.no_progress)
            result.pop("step_seconds")
            print(f"{config.name:32s} seed {seed}  final val {result['val_loss'][-1]}")
            runs.append(result)
    write_results(args.out, {"provenance": provenance(argv), "base_config": asdict(base),
                             "runs": runs})


def run_step_times(args, argv):
    base = TrainConfig(seed=args.seed)
    configs = grid_configs(base, placements=("post", "pre", "sandwich"), warmups=(0,))
    times = step_times(configs, repeats=args.repeats)
    runs = [{"norm": c.norm, "placement": c.placement, "ms_per_step": rounded(t)}
            for c, t in zip(configs, times, strict=True)]
    for r in runs:
        print(f"{r['norm']:10s} {r['placement']:9s} {r['ms_per_step']} ms/step")
    write_results(args.out, {"provenance": provenance(argv), "base_config": asdict(base),
                             "runs": runs})


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m normlab.experiments", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grad-norms", help="per-layer gradient norms at init, several depths")
    g.add_argument("--depths", type=int, nargs="+", default=[2, 4, 6, 8, 12, 16, 24])
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default=RESULTS_DIR / "grad_norms.json")
    t = sub.add_parser("train-grid",
                       help="LN/RMS/none x post/pre/sandwich x warm-up training grid")
    t.add_argument("--steps", type=int, default=TrainConfig.steps)
    t.add_argument("--lr", type=float, default=TrainConfig.lr)
    t.add_argument("--warmup", type=int, default=100, help="warm-up steps of the warm-up runs")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bars")
    t.add_argument("--out", default=RESULTS_DIR / "training_grid.json")
    r = sub.add_parser("seed-spread", help="one norm, several placements x seeds, no warm-up")
    r.add_argument("--norm", default="layernorm")
    r.add_argument("--placements", nargs="+", default=["post", "pre", "sandwich"])
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    r.add_argument("--steps", type=int, default=TrainConfig.steps)
    r.add_argument("--lr", type=float, default=TrainConfig.lr)
    r.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bars")
    r.add_argument("--out", default=RESULTS_DIR / "training_seeds.json")
    s = sub.add_parser("step-times", help="ms per training step, configs timed round-robin")
    s.add_argument("--repeats", type=int, default=7)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=RESULTS_DIR / "step_times.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # same reduction order as the notebook (nb.setup) ⇒ same losses
    commands = {"grad-norms": run_grad_norms, "train-grid": run_train_grid,
                "seed-spread": run_seed_spread, "step-times": run_step_times}
    commands[args.command](args, argv)


if __name__ == "__main__":
    main()
