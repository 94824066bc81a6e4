"""Chapter 8's runs, grids, CLI and figures (tiny configurations; the committed grids)."""

import json
from dataclasses import replace

import pytest

from normlab.experiments import frontier
from normlab.experiments.__main__ import main as cli
from normlab.experiments.training import load_results

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
    for make in frontier.GRIDS.values():
        configs = make()
        seeds = {c.seed for c in configs}
        assert len(seeds) >= 2 and len(configs) <= 24
        assert len(set(configs)) == len(configs)  # no duplicate runs


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
    assert set(qk) == {(lr, q) for lr in (3e-3, 1e-2, 3e-2, 1e-1) for q in ("none", "head",
                                                                             "projection")}
    low, high = qk[3e-3, "head"]["logit"]
    assert 0 < low <= high and qk[3e-3, "head"]["diverged"] == 0
    profile = frontier.profile_summary(load_results("frontier_placement.json"))
    assert ("pre+LNS", "init") in profile and profile["post", "loss"][0] > 0
    dyt = frontier.dyt_summary(load_results("frontier_dyt.json"))
    assert set(dyt) == {(n, c) for n in ("layernorm", "dyt") for c in (None, 10_000)}
    assert 0 <= dyt["dyt", None]["saturated"][0] <= 1 and "alpha" not in dyt["layernorm", None]
    assert frontier.final_loss({"diverged": False, "train_loss": [1.0] * 5 + [3.0] * 10}) == 3.0


def test_unknown_experiment_is_refused(capsys):
    assert cli(["frontier-nope"]) == 2
    assert "unknown experiment 'frontier-nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name, builders", [
    ("frontier_qk.json", ("qk_logit_figure", "qk_loss_figure")),
    ("frontier_placement.json", ("profile_figure",)),
    ("frontier_dyt.json", ("dyt_alpha_figure", "dyt_regime_figure")),
])
def test_committed_grids_match_their_definition_and_plot(name, builders):
    from normlab.figures import frontier as figs

    grid = load_results(name)
    configs = [frontier.FrontierConfig(**r["config"]) for r in grid["runs"]]
    assert configs == frontier.GRIDS[grid["grid"]]()  # stale results fail here
    for builder in builders:
        fig = getattr(figs, builder)(grid)
        assert fig.layout.title.text and len(fig.data) > 0
