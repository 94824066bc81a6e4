"""Tests for normlab.experiments: schedule, grid, training, gradient norms, CLI and results."""

import json
from dataclasses import asdict

import pytest
import torch

from normlab.experiments.results import load_results, provenance
from normlab.experiments.training import (
    TrainConfig,
    grad_norms_at_init,
    grid_configs,
    lr_at,
    main,
    step_times,
    train,
)

SMALL = TrainConfig(steps=4, batch_size=2, block_size=8, d_model=16, n_layers=2, n_heads=2,
                    eval_interval=2, eval_batches=1)


@pytest.fixture(autouse=True)
def one_thread():
    """The experiments run on one thread (as the CLI and the notebooks do)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_lr_warmup_is_linear_then_constant():
    assert lr_at(0, 1.0, 0) == 1.0
    assert [lr_at(t, 1.0, 4) for t in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_grid_has_each_distinct_network_once():
    names = [c.name for c in grid_configs(TrainConfig())]
    assert len(names) == len(set(names)) == 14  # (2 norms x 3 placements + none) x 2 warm-ups
    assert "none/pre/no-warmup" in names and "none/post/no-warmup" not in names
    assert "none/sandwich/no-warmup" not in names
    assert {"rmsnorm/post/warmup100", "layernorm/sandwich/no-warmup",
            "rmsnorm/sandwich/warmup100"} <= set(names)


def test_train_is_deterministic_and_records_everything():
    first, again = train(SMALL, progress=False), train(SMALL, progress=False)
    assert first["train_loss"] == again["train_loss"]
    assert first["val_loss"] == again["val_loss"]
    assert len(first["train_loss"]) == 4 and first["val_steps"] == [0, 2, 4]
    assert len(first["step_seconds"]) == 4 and not first["diverged"]
    assert train(TrainConfig(**{**SMALL.__dict__, "seed": 1}),
                 progress=False)["train_loss"] != first["train_loss"]


def test_huge_learning_rate_is_reported_as_diverged():
    config = TrainConfig(**{**SMALL.__dict__, "norm": "none", "lr": 1e6, "steps": 30})
    result = train(config, progress=False)
    assert result["diverged"] and result["train_loss"][-1] is None


def test_grad_norms_pre_norm_shrinks_toward_output_post_norm_does_not():
    """Xiong et al. (2020), Thm. 1: the last layer's gradient is O(d sqrt(ln d)) for post-norm
    but O(d sqrt(ln d / L)) for pre-norm, whose stream grows with depth."""
    post = grad_norms_at_init("layernorm", "post", depth=12, d_model=32, block_size=16)
    pre = grad_norms_at_init("layernorm", "pre", depth=12, d_model=32, block_size=16)
    assert len(post) == len(pre) == 12
    assert pre[-1] / pre[0] < 0.5
    assert post[-1] / post[0] > 1
    assert post[-1] > 1.5 * pre[-1]


def test_step_times_are_positive_per_config():
    configs = [SMALL, TrainConfig(**{**SMALL.__dict__, "norm": "rmsnorm"})]
    times = step_times(configs, repeats=2, steps=2)
    assert len(times) == 2 and all(0 < t < 1e4 for t in times)


def test_provenance_names_device_versions_and_date():
    info = provenance(["train-grid"])
    assert info["device"] == "cpu" and info["torch"] == torch.__version__
    assert info["command"] == "python -m normlab.experiments train-grid"
    assert {"cpu", "date", "python", "torch_threads"} <= info.keys()


def test_cli_writes_json_with_provenance(tmp_path):
    out = tmp_path / "grad.json"
    main(["grad-norms", "--depths", "2", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["provenance"]["device"] == "cpu"
    assert {(r["norm"], r["placement"]) for r in result["runs"]} >= {("layernorm", "post"),
                                                                     ("rmsnorm", "sandwich")}
    assert all(len(r["grad_norm"]) == 2 for r in result["runs"])


@pytest.mark.parametrize("name", ["training_grid.json", "training_grid_lr1e-2.json"])
def test_committed_grids_have_every_configuration(name):
    grid = load_results(name)
    assert ([r["config"] for r in grid["runs"]]
            == [asdict(c) for c in grid_configs(TrainConfig(**grid["base_config"]),
                                                warmups=(0, max(r["config"]["warmup_steps"]
                                                                for r in grid["runs"])))])


def test_committed_grid_reproduces_its_first_steps():
    grid = load_results("training_grid.json")
    sandwich = next(r for r in grid["runs"] if r["config"]["placement"] == "sandwich")
    for run in grid["runs"][:2] + [sandwich]:
        config = TrainConfig(**{**run["config"], "steps": 3})
        live = train(config, progress=False)["train_loss"]
        assert live == pytest.approx(run["train_loss"][:3], abs=1e-4)


def test_committed_grad_norms_have_every_depth():
    runs = load_results("grad_norms.json")["runs"]
    depths = sorted({r["depth"] for r in runs})
    assert len(depths) >= 3
    assert all(len(r["grad_norm"]) == r["depth"] for r in runs)


def test_train_grid_cli_writes_every_run(tmp_path):
    out = tmp_path / "grid.json"
    main(["train-grid", "--steps", "2", "--warmup", "1", "--no-progress", "--out", str(out)])
    grid = json.loads(out.read_text())
    assert len(grid["runs"]) == 14 and grid["base_config"]["steps"] == 2
    assert all(len(r["train_loss"]) == 2 and r["median_step_ms"] > 0 for r in grid["runs"])
    assert "step_seconds" not in grid["runs"][0]  # summarized, not stored raw


def test_module_runs_as_a_command():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "normlab.experiments", "--help"],
                          capture_output=True, text=True, check=True)
    assert "grad-norms" in done.stdout and "train-grid" in done.stdout


def test_figures_have_working_controls():
    from normlab.figures import transformers as figs

    grad = load_results("grad_norms.json")
    fig = figs.grad_norm_figure(grad)
    depths = sorted({r["depth"] for r in grad["runs"]})
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == [str(d) for d in depths]
    for step, depth in zip(steps, depths, strict=True):
        shown = [t for t, v in zip(fig.data, step.args[0]["visible"], strict=True) if v]
        assert {len(t.x) for t in shown} == {depth}  # one depth's traces, every config
    assert "legendonly" in [t.visible for t in figs.last_layer_figure(grad).data]
    grid = load_results("training_grid.json")
    curves = figs.loss_curves_figure(grid)
    assert len(curves.data) == 2 * len(grid["runs"])
    assert [b.label for b in curves.layout.updatemenus[0].buttons] == ["no warm-up", "warm-up",
                                                                        "all"]
    seeds = figs.seed_spread_figure(load_results("training_seeds.json"),
                                    load_results("training_seeds_rmsnorm.json"))
    per_seed = [t for t in seeds.data if t.text and len(t.x) == 5]
    assert len(per_seed) == 6 + 7  # 2 norms x 3 placements, then the 7 paired comparisons
    intervals = [t for t in seeds.data if t.error_x and t.error_x.array is not None]
    assert len(intervals) == 7 and all(t.error_x.array[0] > 0 for t in intervals)
    values = [v for f in (fig, curves) for t in f.data for v in t.y]
    values += [v for t in seeds.data for v in t.x]
    assert all(v is None or v == float(f"{v:.4g}") for v in values)  # 4 significant digits


def test_seed_spread_cli_trains_every_placement_and_seed(tmp_path):
    out = tmp_path / "seeds.json"
    main(["seed-spread", "--placements", "post", "sandwich", "--seeds", "0", "1", "--steps", "2",
          "--no-progress", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["provenance"]["device"] == "cpu"
    assert [(r["config"]["placement"], r["config"]["seed"]) for r in result["runs"]] == [
        ("post", 0), ("post", 1), ("sandwich", 0), ("sandwich", 1)]
    assert all(r["config"]["warmup_steps"] == 0 and len(r["train_loss"]) == 2
               for r in result["runs"])
    by_seed = {r["config"]["seed"]: r["train_loss"] for r in result["runs"][:2]}
    assert by_seed[0] != by_seed[1]  # a seed changes the weights and the batches


def test_committed_seed_spreads_match_the_grid():
    """Both seed studies train every placement from seeds 0-4; seed 0 is the grid's run."""
    grid = {(r["config"]["norm"], r["config"]["placement"]): r["val_loss"]
            for r in load_results("training_grid.json")["runs"]
            if r["config"]["warmup_steps"] == 0}
    for name, norm in [("training_seeds.json", "layernorm"),
                       ("training_seeds_rmsnorm.json", "rmsnorm")]:
        runs = load_results(name)["runs"]
        assert sorted((r["config"]["placement"], r["config"]["seed"]) for r in runs) == sorted(
            (p, s) for p in ("post", "pre", "sandwich") for s in range(5))
        assert {r["config"]["norm"] for r in runs} == {norm}
        for r in runs:
            if r["config"]["seed"] == 0:
                assert r["val_loss"] == pytest.approx(grid[norm, r["config"]["placement"]],
                                                      abs=1e-4)
