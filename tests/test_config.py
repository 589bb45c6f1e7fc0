"""Configs load strictly: unknown keys, wrong types and out-of-range values are named errors."""

import pytest

from metarl import config


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_have_the_paper_values():
    c = config.Config()
    assert (c.meta_batch_size, c.episodes_per_task, c.inner_lr, c.inner_steps) == (40, 20, 0.1, 1)
    assert (c.max_kl, c.cg_iters, c.cg_damping, c.ls_max_steps, c.ls_backtrack_ratio) == (0.01, 10, 1e-5, 15, 0.8)
    assert (c.gamma, c.gae_lambda, c.outer_lr, c.ppo_epochs, c.ppo_clip) == (0.99, 1.0, 1e-3, 5, 0.3)


def test_every_shipped_config_loads():
    from pathlib import Path

    files = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"))
    assert files
    for f in files:
        config.load(f)


@pytest.mark.parametrize(
    "text, message",
    [
        ("famly: AntDir\n", r"unknown config key\(s\) \['famly'\]"),
        ("iterations: ten\n", "'iterations' must be int, got 'ten'"),
        ("iterations: 2.5\n", "'iterations' must be int"),
        ("first_order: 1\n", "'first_order' must be bool"),
        ("hidden_sizes: 64\n", "'hidden_sizes' must be list"),
        ("inner_lr: -0.1\n", "'inner_lr' must be > 0"),
        ("meta_batch_size: 0\n", "'meta_batch_size' must be >= 1"),
        ("horizon: 0\n", "'horizon' must be >= 1"),
        ("max_kl: 0\n", "'max_kl' must be > 0"),
        ("algo: sac\n", "'algo' must be one of trpo, maml-ppo, promp, vpg, reptile, grbal, mb-mpc, got 'sac'"),
        ("inner_estimator: magic\n", "'inner_estimator' must be one of vpg, lvc, dice or null, got 'magic'"),
        ("inner_estimator: 1\n", "'inner_estimator' must be str | None"),
        ("algo: reptile\ninner_estimator: lvc\n", "'inner_estimator' changes only the second-order"),
        ("first_order: true\ninner_estimator: dice\n", "no effect with first_order: true"),
        ("reptile_eps: 0\n", "'reptile_eps' must be > 0"),
        ("reptile_eps_end: 2.0\n", r"'reptile_eps_end' must be in \[0, reptile_eps\], got 2.0"),
        ("family: Humanoid\n", "unknown task family 'Humanoid'"),
        ("family_options: {max_speed: 3}\n", "unknown option"),
        ("- a\n- b\n", "must hold a mapping"),
        ("iterations: [1\n", "not valid YAML"),
    ],
)
def test_bad_configs(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        config.load(_write(tmp_path, text))


def test_missing_file_and_overrides(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        config.load(tmp_path / "nope.yaml")
    p = _write(tmp_path, "family: AntDir\n")
    c = config.load(p, ["iterations=7", "hidden_sizes=[32, 32]", "family_options={terminate_when_unhealthy: false}"])
    assert c.iterations == 7 and c.hidden_sizes == [32, 32]
    assert c.family_options == {"terminate_when_unhealthy": False}
    with pytest.raises(ValueError, match="key=value"):
        config.load(p, ["iterations"])
    with pytest.raises(ValueError, match="unknown config key"):
        config.load(p, ["iteration=3"])


def test_dump_and_load_round_trip(tmp_path):
    c = config.from_dict({"family": "Navigation2D", "iterations": 3, "horizon": 50})
    config.dump(c, tmp_path / "c.yaml")
    assert config.load(tmp_path / "c.yaml") == c


def test_new_learner_keys_and_the_renamed_algo():
    from metarl import adaptation

    assert config.INNER_ESTIMATORS == adaptation.INNER_ESTIMATORS
    assert config.from_dict({"algo": "promp", "inner_estimator": "dice"}).inner_estimator == "dice"
    assert config.from_dict({"algo": "promp", "first_order": True}).inner_estimator is None
    with pytest.warns(UserWarning, match="algo 'ppo' is now called 'maml-ppo'"):
        assert config.from_dict({"algo": "ppo"}).algo == "maml-ppo"
