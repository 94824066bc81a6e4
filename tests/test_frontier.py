"""Chapter 8's runs, grids, CLI and figures (tiny configurations; the committed grids)."""

import json
import math
from dataclasses import replace

import pytest

from normlab.experiments import frontier
from normlab.experiments.__main__ import main as cli
from normlab.experiments.results import load_results

TINY = frontier.FrontierConfig(steps=3, n_layers=2, d_model=16, n_heads=2, block_size=16,
                               batch_size=4, probe_every=1, eval_batches=2)


def test_a_run_records_losses_probes_and_profiles():
    out = frontier.run(replace(TINY, norm="dyt", qk_norm="head"))
    assert len(out["train_loss"]) == 3 and out["probe_steps"] == [0, 1, 2]
    assert len(out["max_logit"]) == 3 and all(v > 0 for v in out["max_logit"])
    assert set(out["init"]) == {"rms", "update", "grad"} and len(out["final"]["grad"]) == 2
    assert len(out["dyt"][0]["alpha"]) == 2 and 0 <= out["dyt"][0]["saturated"][0] <= 1
    assert out["val_loss"] > 0 and not out["diverged"]


def test_same_seed_same_losses_and_a_data_cap():
    a, b = frontier.run(TINY), frontier.run(TINY)
    assert a["train_loss"] == b["train_loss"]
    capped = frontier.run(replace(TINY, train_chars=200))
    assert capped["train_loss"] != a["train_loss"]


def test_grids_are_seeded_and_small():
    for name, make in frontier.GRIDS.items():
        configs = make()
        seeds = {c.seed for c in configs}
        trains = name not in frontier.RUNNERS  # an init-only grid costs ~1 s a run
        assert len(seeds) >= 2 and len(configs) <= (36 if trains else 100)
        assert len(set(configs)) == len(configs)  # no duplicate runs


def test_init_run_is_runs_initial_profile_and_seeded():
    tiny = replace(TINY, placement="peri", ln_scaling=True)
    out = frontier.init_run(tiny)
    assert out["init"] == frontier.run(tiny)["init"] and set(out) == {"config", "init"}
    assert {len(v) for v in out["init"].values()} == {tiny.n_layers}
    assert frontier.init_run(tiny) == out  # same seed, same profile
    assert frontier.init_run(replace(tiny, seed=1))["init"] != out["init"]


def test_depth_grid_covers_depths_and_placements_untrained():
    configs = frontier.depth_grid()
    assert {c.n_layers for c in configs} == set(frontier.DEPTHS)
    assert {c.steps for c in configs} == {0}
    variants = {frontier.variant({"placement": c.placement, "ln_scaling": c.ln_scaling})
                for c in configs}
    assert variants == {"post", "deepnorm", "pre", "pre+LNS", "peri", "olmo2"}
    assert len(configs) == len(frontier.DEPTHS) * 6 * len(frontier.SEEDS)


def test_depth_summary_of_a_tiny_grid(tmp_path, monkeypatch):
    configs = [replace(TINY, n_layers=n, seed=s, **v) for n in (1, 3) for s in (0, 1)
               for v in ({"placement": "post"}, {"placement": "pre", "ln_scaling": True})]
    monkeypatch.setitem(frontier.GRIDS, "frontier-depth", lambda: configs)
    out = tmp_path / "depth.json"
    assert cli(["frontier-depth", "--no-progress", "--out", str(out)]) == 0
    grid = json.loads(out.read_text())
    assert [len(r["init"]["rms"]) for r in grid["runs"]] == [c.n_layers for c in configs]
    assert all("train_loss" not in r for r in grid["runs"])  # nothing was trained
    summary = frontier.depth_summary(grid)
    assert set(summary) == {(v, n) for v in ("post", "pre+LNS") for n in (1, 3)}
    assert summary["post", 1]["grad"] == (1.0, 1.0)  # one block: last/first = 1
    low, high = summary["pre+LNS", 3]["rms"]
    assert 0 < low <= high


def test_cli_writes_a_grid_with_provenance(tmp_path, monkeypatch):
    monkeypatch.setitem(frontier.GRIDS, "frontier-qk", lambda: [TINY, replace(TINY, seed=1)])
    out = tmp_path / "qk.json"
    assert cli(["frontier-qk", "--no-progress", "--out", str(out)]) == 0
    grid = json.loads(out.read_text())
    assert grid["provenance"]["command"] == f"python -m normlab.experiments frontier-qk " \
                                            f"--no-progress --out {out}"
    assert grid["wall_seconds"] >= 0 and len(grid["runs"]) == 2


def test_select_and_spread():
    grid = {"runs": [{"config": {"lr": 1, "qk_norm": "none"}},
                     {"config": {"lr": 2, "qk_norm": "head"}}]}
    assert frontier.select(grid, lr=2) == [grid["runs"][1]]
    assert frontier.select(grid, lr=1, qk_norm="head") == []
    assert frontier.spread([3.0, None, 1.0]) == (1.0, 3.0) and frontier.spread([None]) is None


def test_summaries_of_the_committed_grids():
    qk = frontier.qk_summary(load_results("frontier_qk.json"))
    assert set(qk) == {(lr, q) for lr in frontier.QK_LRS for q in ("none", "head", "projection")}
    low, high = qk[3e-3, "head"]["logit"]
    assert 0 < low <= high and qk[3e-3, "head"]["diverged"] == 0
    profile = frontier.profile_summary(load_results("frontier_placement.json"))
    assert ("pre+LNS", "init") in profile and profile["post", "loss"][0] > 0
    dyt = frontier.dyt_summary(load_results("frontier_dyt.json"))
    assert set(dyt) == {(n, c) for n in ("layernorm", "dyt") for c in (None, 10_000)}
    assert 0 <= dyt["dyt", None]["saturated"][0] <= 1 and "alpha" not in dyt["layernorm", None]
    assert frontier.final_loss({"diverged": False, "train_loss": [1.0] * 5 + [3.0] * 10}) == 3.0
    assert qk[1.0, "none"]["blew_up"] == 2 and qk[3e-3, "none"]["blew_up"] == 0
    assert qk[3e-3, "none"]["start"][0] > qk[3e-3, "none"]["loss"][1]


def test_blew_up_and_unigram_loss():
    assert not frontier.blew_up({"diverged": False, "train_loss": [4.0] + [2.0] * 10})
    assert frontier.blew_up({"diverged": False, "train_loss": [4.0] + [9.0] * 10})
    assert frontier.blew_up({"diverged": True, "train_loss": [4.0, None]})
    assert frontier.unigram_loss([0, 1, 2, 3] * 5) == pytest.approx(math.log(4))
    assert frontier.unigram_loss([7] * 9) == 0


def test_unknown_experiment_is_refused(capsys):
    assert cli(["frontier-nope"]) == 2
    assert "unknown experiment 'frontier-nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name, builders", [
    ("frontier_qk.json", ("qk_logit_figure", "qk_loss_figure")),
    ("frontier_placement.json", ("profile_figure",)),
    ("frontier_dyt.json", ("dyt_alpha_figure", "dyt_regime_figure")),
    ("frontier_depth.json", ("depth_figure",)),
])
def test_committed_grids_match_their_definition_and_plot(name, builders):
    from normlab.figures import frontier as figs

    grid = load_results(name)
    configs = [frontier.FrontierConfig(**r["config"]) for r in grid["runs"]]
    assert configs == frontier.GRIDS[grid["grid"]]()  # stale results fail here
    for builder in builders:
        fig = getattr(figs, builder)(grid)
        assert fig.layout.title.text and len(fig.data) > 0


def test_loss_figure_draws_reference_lines_and_depth_slider_steps():
    from normlab.figures import frontier as figs

    qk = load_results("frontier_qk.json")
    names = [t.name for t in figs.qk_loss_figure(qk, unigram=3.0).data]
    assert "loss at step 0" in names and "letter frequencies only (unigram)" in names
    assert "letter frequencies only (unigram)" not in [t.name for t in figs.qk_loss_figure(qk).data]
    depth = load_results("frontier_depth.json")
    fig = figs.depth_figure(depth)
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == [str(n) for n in frontier.DEPTHS]
    for s in steps:  # each step shows 6 variants x 3 seeds x 2 panels, x range to its depth
        n = int(s.label)
        assert sum(s.args[0]["visible"]) == 6 * len(frontier.SEEDS) * 2
        assert s.args[1]["xaxis2.range"] == [0.5, n + 0.5]
