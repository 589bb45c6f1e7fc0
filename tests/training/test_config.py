"""Configs load strictly: unknown keys, wrong types and out-of-range values are named errors."""

import pytest

from metarl.training import config


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_have_the_paper_values():
    from metarl.learners.gradient.maml import PpoConfig, TrpoConfig

    c = TrpoConfig(family="HalfCheetahVel")
    assert (c.meta_batch_size, c.episodes_per_task, c.inner_lr, c.inner_steps) == (40, 20, 0.1, 1)
    assert (c.max_kl, c.cg_iters, c.cg_damping, c.ls_max_steps, c.ls_backtrack_ratio) == (0.01, 10, 1e-5, 15, 0.8)
    c = PpoConfig(family="HalfCheetahVel")
    assert (c.gamma, c.gae_lambda, c.outer_lr, c.ppo_epochs, c.ppo_clip) == (0.99, 1.0, 1e-3, 5, 0.3)


def test_every_shipped_config_loads():
    from pathlib import Path

    files = sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.yaml"))
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
        ("horizon: 0\n", r"'horizon' must be in \[1, 100000\]"),
        ("horizon: 1000000000\n", r"'horizon' must be in \[1, 100000\]"),
        ("seed: 1180591620717411303424\n", r"'seed' must be in \[0, 4294967295\]"),
        ("max_kl: .inf\n", "'max_kl' must be a finite number"),
        ("inner_lr: .nan\n", "'inner_lr' must be a finite number"),
        ("iterations: 3\niterations: 4\n", "duplicate key 'iterations'"),
        ("max_kl: 0\n", "'max_kl' must be > 0"),
        ("algo: sac\n",
         "'algo' must be one of trpo, maml-ppo, promp, vpg, reptile, grbal, mb-mpc, batched-ppo, rl2, rma, got 'sac'"),
        ("inner_estimator: magic\n", "'inner_estimator' must be one of vpg, lvc, dice or null, got 'magic'"),
        ("inner_estimator: 1\n", "'inner_estimator' must be str | None"),
        ("first_order: true\ninner_estimator: dice\n", "no effect with first_order: true"),
        ("algo: reptile\nreptile_eps: 0\n", "'reptile_eps' must be > 0"),
        ("algo: reptile\nreptile_eps_end: 2.0\n", r"'reptile_eps_end' must be in \[0, reptile_eps\], got 2.0"),
        ("family: Humanoid\n", "unknown task family 'Humanoid'"),
        ("family_options: {max_speed: 3}\n", "unknown option"),
        ("- a\n- b\n", "must hold a mapping"),
        ("iterations: [1\n", "not valid YAML"),
    ],
)
def test_bad_configs(tmp_path, text, message):
    if not text.startswith(("family:", "-")):
        text = "family: Navigation2D\n" + text  # every config names its family
    with pytest.raises(ValueError, match=message):
        config.load(_write(tmp_path, text))


def test_a_config_without_a_family_is_refused(tmp_path):
    for text in ("", "iterations: 3\n"):
        with pytest.raises(ValueError, match="no family given; add 'family: NAME'"):
            config.load(_write(tmp_path, text))


def test_another_learners_keys_are_left_out_with_a_warning(tmp_path):
    p = _write(tmp_path, "family: Navigation2D\nmax_kl: 0.02\n")
    with pytest.warns(UserWarning, match=r"\['max_kl'\] do not apply to algo reptile \(they are keys of trpo\)"):
        c = config.load(p, ["algo=reptile"])
    assert not hasattr(c, "max_kl") and "max_kl" not in config.to_dict(c)
    with pytest.raises(ValueError, match="--set 'hidden_sizes=\\[1,2': the value is not valid YAML"):
        config.load(p, ["hidden_sizes=[1,2"])


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
    nav = {"family": "Navigation2D"}
    assert config.from_dict({**nav, "algo": "promp", "inner_estimator": "dice"}).inner_estimator == "dice"
    assert config.from_dict({**nav, "algo": "promp", "first_order": True}).inner_estimator is None
    with pytest.warns(UserWarning, match="algo 'ppo' is now called 'maml-ppo'"):
        assert config.from_dict({**nav, "algo": "ppo"}).algo == "maml-ppo"
