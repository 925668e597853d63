"""The package's tiers (ARCHITECTURE.md): imports run one way, core <- training <- experiments <- lab <- cli.

Every import in every module counts, the ones inside functions too: a lazy
import is still a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import qgait_lab

PACKAGE = Path(qgait_lab.__file__).parent

#: Each top-level name of the package and its tier; a higher tier may import a lower one, never the reverse.
TIERS = {"errors": 0, "ranks": 0, "quant": 0, "models": 0, "losses": 0, "evaluation": 0, "data": 0,
         "deploy": 0, "training": 1, "experiments": 2, "lab": 3, "cli": 4}
NAMES = {0: "core", 1: "training", 2: "experiments", 3: "lab", 4: "cli"}


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "qgait_lab" else None


def _imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import of ``qgait_lab`` in the file (or in ``source``, read
    as that file's text)."""
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])
    found = []
    for node in ast.walk(ast.parse(source if source is not None else path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names = [f"{module}.{a.name}" for a in node.names] if not node.module else [module]
            else:
                names = [node.module or ""]
            found += [(node.lineno, m) for m in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, m) for line, m in found if m.startswith("qgait_lab")]


def test_every_top_level_name_has_a_tier():
    names = {p.stem if p.suffix == ".py" else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert names == set(TIERS), f"give these a tier: {sorted(names ^ set(TIERS))}"


def test_imports_run_one_way():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _top(".".join(("qgait_lab",) + path.relative_to(PACKAGE).with_suffix("").parts))
        for line, module in _imports(path):
            there = _top(module)
            if here in TIERS and there in TIERS and TIERS[there] > TIERS[here]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({NAMES[TIERS[here]]}) imports "
                             f"{module} ({NAMES[TIERS[there]]})")
    assert not wrong, "imports against the tiers:\n" + "\n".join(wrong)


def test_the_checker_sees_lazy_and_relative_imports():
    """The check itself: an upward import inside a function, written relatively, is found."""
    probe = PACKAGE / "models" / "probe.py"
    assert _imports(probe, "def f():\n    from ..experiments import pipeline\n") == [(2, "qgait_lab.experiments")]
    assert _imports(probe, "from . import gaitbase\nimport qgait_lab.lab.theory\n") == [
        (1, "qgait_lab.models.gaitbase"), (2, "qgait_lab.lab.theory")]
