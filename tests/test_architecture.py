"""The architecture as tests: no import circles, no package that swallows the code base, and a README that states
the same layers as the import contract `make lint` enforces."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "oshal"
MAX_PACKAGE_SHARE = 0.15


def _import_circles(graph: grimp.ImportGraph) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    circles: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(component)
    return circles


def test_no_module_imports_itself_through_others() -> None:
    circles = _import_circles(grimp.build_graph("oshal"))
    assert circles == [], "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in circles)


def test_the_circle_finder_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _import_circles(graph) == [{"a.x", "a.y"}]


def _lines_of_code(path: Path) -> int:
    return sum(1 for f in path.rglob("*.py") for line in f.read_text().splitlines() if line.strip())


def test_no_package_holds_more_than_its_share_of_the_code() -> None:
    total = _lines_of_code(SRC)
    shares = {p.name: _lines_of_code(p) / total for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    too_big = {name: f"{share:.1%}" for name, share in shares.items() if share > MAX_PACKAGE_SHARE}
    assert not too_big, f"packages above {MAX_PACKAGE_SHARE:.0%} of src/oshal: {too_big}; split them by concept"


def _contract_layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [[name.strip() for name in re.split(r"[|:]", layer)] for layer in layers]


def _readme_layers() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Layers", 1)[1].split("\n#", 1)[0]
    return [re.findall(r"`([a-z_]+)`", line.split(" — ")[0])
            for line in section.splitlines() if re.match(r"^\d+\. ", line)]


def test_the_readme_states_the_layers_the_import_contract_enforces() -> None:
    assert _readme_layers() == _contract_layers()


def test_every_package_is_in_a_layer() -> None:
    layered = {name for layer in _contract_layers() for name in layer}
    present = {p.stem for p in SRC.iterdir() if (p.is_dir() and (p / "__init__.py").exists()) or
               (p.suffix == ".py" and p.stem != "__init__")}
    assert present == layered
