"""The result tables of the README and the docs are those the committed cards and records give."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)


@pytest.mark.parametrize("rel", list(readme_tables.FILES))
def test_each_file_s_tables_match_the_files_behind_them(rel):
    names = readme_tables.FILES[rel]
    _, changed = readme_tables.render((ROOT / rel).read_text(), names, source=rel)
    assert changed == [], f"run python scripts/readme_tables.py: {rel}'s {changed} differ from their files"


def test_every_table_lives_somewhere_and_the_readme_has_the_headline():
    placed = [name for names in readme_tables.FILES.values() for name in names]
    assert set(placed) == set(readme_tables.TABLES)
    assert readme_tables.FILES["README.md"] == ("families",)


def test_a_changed_card_is_caught(tmp_path):
    model_based = [str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks" / "results").glob("model-based-*")]
    attempts = [str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks" / "results").glob("attempt-*")]
    memory = [str(p.relative_to(ROOT)) for pattern in ("rl2-*", "rma-*")
              for p in (ROOT / "benchmarks" / "results").glob(pattern)]
    for rel in ("policies/pretrained", "benchmarks/results/learning-hcv-fast", "benchmarks/results/learners-hcv-fast",
                "benchmarks/results/sinusoid", *model_based, *attempts, *memory):
        shutil.copytree(ROOT / rel, tmp_path / rel, ignore=shutil.ignore_patterns("*.pt", "*.png"))
    card_path = tmp_path / "policies" / "pretrained" / "HalfCheetahVel.json"
    card = json.loads(card_path.read_text())
    card["evaluation"]["methods"]["maml"]["mean"][1] += 1.0
    card_path.write_text(json.dumps(card))
    results = readme_tables.render_files(root=tmp_path)
    changed = {rel: names for rel, (_, names) in results.items() if names}
    assert changed == {"README.md": ["families"], "docs/evaluation.md": ["families"], "docs/results.md": ["shipped"]}


def test_a_missing_or_stray_block_is_an_error():
    with pytest.raises(SystemExit, match="X.md has no <!-- table:families --> block"):
        readme_tables.render("no tables here\n", ("families",), source="X.md")
    stray = ("<!-- table:families -->\n| |\n<!-- /table:families -->\n"
             "<!-- table:shipped -->\n| |\n<!-- /table:shipped -->\n")
    with pytest.raises(SystemExit, match="X.md has a <!-- table:shipped --> block, which is not one of its tables"):
        readme_tables.render(stray, ("families",), source="X.md")


def test_check_names_each_stale_file_and_the_rewrite_fixes_it(tmp_path, capsys):
    for rel in readme_tables.FILES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, tmp_path / rel)
    results = tmp_path / "docs" / "results.md"
    text = results.read_text()
    start = text.index("<!-- table:sinusoid -->\n") + len("<!-- table:sinusoid -->\n")
    results.write_text(text[:start] + "| stale |\n" + text[start:])
    assert readme_tables.main(["--check"], base=tmp_path) == 1
    out = capsys.readouterr().out
    assert "docs/results.md (sinusoid)" in out and "README.md" not in out
    assert readme_tables.main([], base=tmp_path) == 0
    assert readme_tables.main(["--check"], base=tmp_path) == 0
    assert results.read_text() == (ROOT / "docs" / "results.md").read_text()
    (tmp_path / "docs" / "learners.md").unlink()
    with pytest.raises(SystemExit, match="docs/learners.md is missing"):
        readme_tables.main(["--check"], base=tmp_path)


def test_a_family_tried_and_not_shipped_shows_its_attempt(tmp_path):
    shutil.copytree(ROOT / "policies" / "pretrained", tmp_path / "policies" / "pretrained",
                    ignore=shutil.ignore_patterns("*.pt", "*.png", "training", "HalfCheetahVel*"))
    attempt = tmp_path / "benchmarks" / "results" / "attempt-HalfCheetahVel"
    attempt.mkdir(parents=True)
    card = (ROOT / "policies" / "pretrained" / "HalfCheetahVel.json").read_text()
    (attempt / "HalfCheetahVel.json").write_text(card)
    rows = {r.split(" | ")[0].strip("| "): r for r in readme_tables.families_table(tmp_path).splitlines()[2:]}
    seed = json.loads(card)["seed"]
    assert f"not shipped (seed {seed}: benchmarks/results/attempt-HalfCheetahVel)" in rows["HalfCheetahVel"]
    # the attempt's row is judged like a shipped one (its card's own target status, tested below)
    assert rows["HalfCheetahVel"].endswith(f"| {readme_tables.target_status(json.loads(card))} |")
    assert "| seed 1 |" in rows["AntGoal"] and "not yet" in rows["AntCrippledLeg"]


def test_every_locomotion_family_has_a_row():
    rows = readme_tables.families_table().splitlines()[2:]
    assert [r.split(" | ")[0].strip("| ") for r in rows] == list(readme_tables.LOCOMOTION)
    import envs

    assert set(readme_tables.LOCOMOTION) == {f for f in envs.FAMILIES if envs.get_family(f).body is not None}


def test_target_status_names_every_reason():
    def card(maml_ci, pre_ci, oracle=None, gap=None):
        methods = {"maml": {"mean": [sum(c) / 2 for c in maml_ci], "ci95": maml_ci},
                   "pretrained": {"mean": [sum(c) / 2 for c in pre_ci], "ci95": pre_ci}}
        if oracle is not None:
            methods["oracle"] = {"mean": [oracle], "ci95": [[oracle, oracle]]}
        return {"evaluation": {"methods": methods, "gap_closed_after_1_step": gap}}

    assert readme_tables.target_status(card([[0, 10], [20, 30]], [[0, 5], [5, 15]], 40, 0.7)) == "met"
    assert readme_tables.target_status(card([[0, 10], [20, 30]], [[0, 5], [5, 15]])) == "met"  # dynamics: no oracle
    status = readme_tables.target_status(card([[0, 25], [20, 30]], [[0, 5], [5, 21]], 26, 0.5))
    assert status.startswith("not met") and "overlaps MAML 0" in status and "overlaps pretrained" in status
    assert "0.50 < 0.6" in status
    below = card([[0, 10], [20, 30]], [[0, 5], [5, 15]], 22, 1.4)  # the oracle under MAML after one step
    assert "gap share is undefined" in readme_tables.target_status(below)


def test_model_based_target_counts_seeds_and_env_steps():
    def ev(a, b, c, steps=(80_000, 24_000_000)):
        methods = {"grbal": {"ci95": a, "training_env_steps": steps[0]}, "grbal-unadapted": {"ci95": b},
                   "mb-mpc-adapted": {"ci95": c}, "maml": {"training_env_steps": steps[1]}}
        return {"methods": methods}

    evals = [ev([5, 7], [1, 3], [8, 10]), ev([5, 7], [6, 8], [1, 4])]
    assert readme_tables.model_based_target(evals) == ("(a) above (b) in 1 of 2 seeds; (a) above (c) in 1 of 2 seeds; "
                                                       "(a)'s env steps 0.33% of (d)'s")
    no_maml = [{"methods": {k: v for k, v in e["methods"].items() if k != "maml"}} for e in evals]
    assert "env steps" not in readme_tables.model_based_target(no_maml)


def test_model_based_env_steps_follow_the_seeds(tmp_path):
    for seed, (steps, ret) in {1: (900, 5.0), 2: (100, 7.0)}.items():
        path = tmp_path / "benchmarks" / "results" / "model-based-X" / f"eval-s{seed}" / "model_eval.json"
        path.parent.mkdir(parents=True)
        grbal = {"mean": ret, "ci95": [ret - 1, ret + 1], "training_env_steps": steps}
        path.write_text(json.dumps({"family": "X", "methods": {"grbal": grbal}}))
    row = readme_tables.model_based_table(tmp_path).splitlines()[2]
    assert "| 900 / 100 | 5.0 [4.0, 6.0]; 7.0 [6.0, 8.0] |" in row  # each seed's steps beside its return


def test_the_baselines_column_names_the_ppo_and_its_budget():
    assert readme_tables.baselines_text({}) == "SB3 PPO, 1M"
    card = {"baselines": {"pretrained": {"algorithm": "batched-ppo on the task mixture", "budget": 4_000_000}}}
    assert readme_tables.baselines_text(card) == "batched PPO, 4M"


def _memory_record(path, learner, seed, first, robust=(100.0, 90.0, 110.0), oracle=(700.0, 690.0, 710.0),
                   switch=None, family="HalfCheetahDisabledJoint", per_task=None, tasks=None, episodes=(0,)):
    """Write a memory learner's adaptation.json (the fields the tables read) and return it."""
    def method(mean, low, high, seen=(0,)):
        return {"mean": [mean] * len(seen), "ci95": [[low, high]] * len(seen), "experience": {"episodes": list(seen)},
                "per_task": per_task or [[mean] * 4] * len(seen)}

    record = {"family": family, "learner": learner, "family_options": {}, "training": {"seed": seed},
              "tasks": tasks or [{"joint": 3}] * 4, "seed": 0, "horizon": 200,
              "methods": {learner: method(*first, seen=episodes), "pretrained": method(*robust),
                          "oracle": method(*oracle)}}
    if switch is not None:  # reward per step of the learner and the oracle: before the switch at 4, then two windows
        record["switch"] = {"at": 4, "reward_per_step": {learner: {"mean": switch[0]}, "oracle": {"mean": switch[1]}}}
    path.mkdir(parents=True)
    (path / "adaptation.json").write_text(json.dumps(record))
    return record


def test_memory_target_names_every_reason_and_passes_a_record_that_meets_every_bar(tmp_path):
    window = readme_tables.switch_recovery  # the windows follow metarl.evaluation's RECOVERY_WINDOW
    at = 4
    ours, expert = [3.0] * 200, [3.0] * 200
    assert window(ours, at)["then"] == 3.0
    good = [_memory_record(tmp_path / f"s{s}", "rma", s, (650.0, 640.0, 660.0), switch=(ours, expert))
            for s in (1, 2, 3)]
    assert readme_tables.memory_target("HalfCheetahDisabledJoint", good) == "met"
    weak = [_memory_record(tmp_path / "w1", "rma", 1, (400.0, 95.0, 700.0), switch=([2.0] * 200, expert))]
    status = readme_tables.memory_target("HalfCheetahDisabledJoint", weak)
    assert status.startswith("not met: ") and "trails the robust policy in seed(s) 1" in status
    assert "gap closed 0.50 < 0.8" in status and "after a switch 0.67 of the bar < 0.9" in status
    assert "1 seed(s) of 3" in status
    # off the broken robots the bar is the learner's own reward per step before the switch
    hopper = [_memory_record(tmp_path / "h1", "rma", 1, (650.0, 640.0, 660.0), switch=([4.0] * 4 + [2.0] * 196, expert),
                             family="HopperRandParams")]
    assert readme_tables.memory_recovery("HopperRandParams", hopper[0]) == pytest.approx(0.5)
    no_gap = [_memory_record(tmp_path / "o1", "rma", 1, (650.0, 640.0, 660.0), oracle=(80.0, 70.0, 90.0))]
    assert "gap share is undefined" in readme_tables.memory_target("HopperRandParams", no_gap)
    assert "switch recovery undefined" in readme_tables.memory_target("HopperRandParams", no_gap)
    # a bar at or below zero, or no episode left running in the window: no share of it is claimed
    negative = _memory_record(tmp_path / "n1", "rma", 1, (650.0, 640.0, 660.0), switch=(ours, [-1.0] * 200))
    fallen = _memory_record(tmp_path / "f1", "rma", 1, (650.0, 640.0, 660.0), switch=([3.0] * 4 + [None] * 196, expert))
    assert readme_tables.memory_recovery("HalfCheetahDisabledJoint", negative) is None
    assert readme_tables.memory_recovery("HalfCheetahDisabledJoint", fallen) is None


def test_memory_records_group_by_options_and_refuse_a_seed_twice(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    _memory_record(results / "rma-X" / "s2", "rma", 2, (10.0, 9.0, 11.0))
    _memory_record(results / "rma-X" / "s1", "rma", 1, (12.0, 11.0, 13.0))
    groups = readme_tables.memory_records(tmp_path)
    assert [r["training"]["seed"] for r in groups[("HalfCheetahDisabledJoint", "rma", "{}")]] == [1, 2]
    _memory_record(results / "rma-X" / "again-s1", "rma", 1, (12.0, 11.0, 13.0))
    with pytest.raises(SystemExit, match="both training seed 1"):
        readme_tables.memory_records(tmp_path)
    shutil.rmtree(results / "rma-X" / "again-s1")
    _memory_record(results / "rma-X" / "s3", "rma", 3, (12.0, 11.0, 13.0), tasks=[{"joint": 3}] * 2)
    with pytest.raises(SystemExit, match="evaluated on different held-out tasks"):
        readme_tables.memory_records(tmp_path)
    shutil.rmtree(results / "rma-X" / "s3")
    record = json.loads((results / "rma-X" / "s1" / "adaptation.json").read_text())
    del record["methods"]["pretrained"]
    (results / "rma-X" / "s1" / "adaptation.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="rma-X/s1 has no pretrained and oracle baselines"):
        readme_tables.memory_table(tmp_path)


def test_memory_vs_maml_pairs_the_episode_within_a_tenth_of_maml_s_experience(tmp_path):
    pretrained = tmp_path / "policies" / "pretrained"
    pretrained.mkdir(parents=True)
    tasks = [{"velocity": v} for v in (0.5, 1.0, 1.5, 2.0)]
    maml = {"episodes": 10, "tasks": tasks,
            "methods": {"maml": {"mean": [-100.0, -60.0], "per_task": [[-100.0] * 4, [-62.0, -58.0, -61.0, -59.0]]}}}
    (pretrained / "HalfCheetahVel.adaptation.json").write_text(json.dumps(maml))
    (pretrained / "HalfCheetahVel.json").write_text(json.dumps({"env_steps": 24_000_000}))
    run = tmp_path / "benchmarks" / "results" / "rl2-HalfCheetahVel" / "s1"
    # episodes after 0, 1 (a tenth of MAML's 10: the one compared) and 2 episodes of experience
    record = _memory_record(run, "rl2", 1, (-70.0, -75.0, -65.0), family="HalfCheetahVel", tasks=tasks,
                            per_task=[[-90.0] * 4, [-57.0, -55.0, -56.0, -56.0], [0.0] * 4], episodes=(0, 1, 2))
    (run / "progress.csv").write_text("iteration,env_steps\n1,12800\n2,25600\n")
    row = readme_tables.memory_vs_maml_table(tmp_path).splitlines()[2]
    assert "seed 1, after 1: +4.0 [" in row  # the episode after one episode minus MAML 1, paired per task
    assert "0.0256M / 24M" in row and "not met: 1 seed(s) of 3" in row
    record["tasks"] = tasks[::-1]
    (run / "adaptation.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="other held-out tasks"):
        readme_tables.memory_vs_maml_table(tmp_path)
