"""The floors written in the README hold: every import in the package points down or sideways
within its own package, and the faces never reach the store. (That nothing imports the lab is
checked in test_packaging.py, with the wheel.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "clampdown"
FACES = {"api", "web", "cli"}
BELOW_THE_SERVICES = {"store", "db", "engine", "audit"}  # what the faces reach only through services


def readme_floors() -> dict[str, int]:
    """Unit (a top-level module or package of clampdown) -> floor, from the README's layout table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1]
    floors = {}
    for number, name in re.findall(r"^ {4}(\d+)\s+(\S+)", section, flags=re.MULTILINE):
        floors[name.removesuffix("/").removesuffix(".py")] = int(number)
    return floors


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every import of clampdown or the lab."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package and len(parts) > 1:
            parts = parts[:-1]
        module = ".".join(parts) if parts != ["clampdown", "__init__"] else "clampdown"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts if is_package else parts[:-1]
                    base = base[: len(base) - node.level + 1]
                    names = [".".join([*base, *([node.module] if node.module else [])])]
                else:
                    names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.split(".")[0] in ("clampdown", "clampdown_lab"):
                    found.append((module, name, node.lineno))
    return found


def test_the_readme_names_every_part_of_the_package() -> None:
    floors = readme_floors()
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    units.discard("__pycache__")
    assert units == set(floors), f"README layout vs src/clampdown: {sorted(units ^ set(floors))}"


def test_every_import_points_down_the_floors() -> None:
    floors = readme_floors()
    wrong = []
    for module, name, line in imports():
        if name.startswith("clampdown_lab") or name.startswith("clampdown.lab"):
            continue  # the next test
        source, target = _unit(module), _unit(name)
        if name == "clampdown":
            target = "__init__"
        if source == target:
            continue
        if floors[target] >= floors[source]:
            wrong.append(f"{module}:{line} imports {name} (floor {floors[source]} -> {floors[target]})")
    assert not wrong, "imports that do not point down:\n" + "\n".join(wrong)


def test_the_faces_call_services_not_the_store() -> None:
    wrong = [
        f"{module}:{line} imports {name}"
        for module, name, line in imports()
        if _unit(module) in FACES and _unit(name) in BELOW_THE_SERVICES
    ]
    assert not wrong, "faces reaching below the services:\n" + "\n".join(wrong)


def test_the_check_sees_an_import_that_points_up() -> None:
    """The walk itself works: the engine imports the store (down), never the reverse."""
    found = {(_unit(m), _unit(n)) for m, n, _ in imports()}
    assert ("engine", "store") in found and ("store", "engine") not in found
