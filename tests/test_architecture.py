"""The layers hold: learner names are looked up only in the registry, dependencies point one way."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python_files(*folders):
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_learner_name_is_compared_outside_the_registry():
    from metarl import learners

    names = "|".join(re.escape(n) for n in learners.names())
    compare = re.compile(rf"""(==|!=|\bin\b)\s*\(?["']({names})["']|["']({names})["']\s*(==|!=)|algo\s*(==|!=|in\b)""")
    offenders = []
    for path in _python_files("metarl"):
        if ROOT / "metarl" / "learners" in path.parents:
            continue  # the learners register themselves by name
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if compare.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("layer", ["envs", "policies"])
def test_the_world_and_the_approximators_never_import_metarl(layer):
    offenders = [str(p.relative_to(ROOT)) for p in _python_files(layer) if "metarl" in _imports(p)]
    assert not offenders


def test_the_library_never_imports_the_benchmarks():
    offenders = [str(p.relative_to(ROOT)) for p in _python_files("metarl") if "benchmarks" in _imports(p)]
    assert not offenders


def test_every_registered_learner_has_a_documented_config_and_the_interface():
    import inspect
    import sys

    from metarl import learners

    for entry in learners.entries():
        assert entry.kind in learners.KINDS and entry.summary and entry.paper
        for cls in entry.config.__mro__:
            if "__dataclass_fields__" not in vars(cls):
                continue
            source = inspect.getsource(sys.modules[cls.__module__])
            for name in vars(cls).get("__annotations__", {}):
                # every key has its one-line docstring right under it (as cleanrl's configs)
                assert re.search(rf"\n    {name}: [^\n]+\n    \"\"\"", source), (entry.name, cls.__name__, name)
        for attribute in ("step", "state", "load_state", "write_artifacts", "postfix", "summary", "close",
                          "csv_fields", "artifacts"):
            assert hasattr(entry.make, attribute), (entry.name, attribute)
