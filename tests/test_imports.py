"""The package's import graph: no cycles, and no import against the layer order
``core → data → evaluation → baselines → studies → reporting → cli`` — counting imports inside
functions too, which Python resolves late and which would hide a circle until run time."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fapm_jax

ROOT = Path(fapm_jax.__file__).parent
LAYERS = ("core", "data", "evaluation", "baselines", "studies", "reporting", "cli")


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (``fapm_jax.core.fit``; packages by their
    ``__init__``: ``fapm_jax.core``)."""
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def import_graph() -> dict[str, set[str]]:
    """``module → modules of the package it imports`` (module level and inside functions)."""
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                # ``from pkg import mod`` imports the module pkg.mod
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src for a in node.names]
            for t in targets:
                while t and t not in mods and "." in t:
                    t = t.rpartition(".")[0]
                if t in mods and t != name:
                    graph[name].add(t)
    return graph


def layer(module: str) -> int | None:
    """The layer of ``fapm_jax.<layer>…``; ``None`` for the package root (the public API)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles (one path per strongly connected component of more than one module)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def against_layers(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a lower layer to a higher one, or of the package root (which imports every
    layer) from anywhere but the command line."""
    bad = []
    for src, dsts in graph.items():
        ls = layer(src)
        for dst in dsts:
            ld = layer(dst)
            if ls is None:
                continue  # the root re-exports the public API of every layer
            if ld is None:
                if LAYERS[ls] != "cli":
                    bad.append((src, dst))
            elif ld > ls:
                bad.append((src, dst))
    return bad


def test_every_module_is_in_a_layer():
    names = [m for m in modules() if m != "fapm_jax"]
    assert names
    stray = [m for m in names if m.split(".")[1] not in LAYERS]
    assert not stray, f"modules outside the layers {LAYERS}: {stray}"


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, f"import cycles: {found}"


def test_no_import_against_the_layer_order():
    bad = against_layers(import_graph())
    assert not bad, "imports against " + " → ".join(LAYERS) + ": " + ", ".join(f"{a} → {b}" for a, b in bad)


def test_function_level_imports_are_counted():
    """The graph sees an import inside a function: the fit entry point's trainers."""
    g = import_graph()
    assert "fapm_jax.core.moments" in g["fapm_jax.core.fit"]
    assert "fapm_jax.core.config" in g["fapm_jax.studies.rolling"]


@pytest.mark.parametrize(
    ("graph", "n_cycles", "n_bad"),
    [
        ({"fapm_jax.core.a": {"fapm_jax.core.b"}, "fapm_jax.core.b": {"fapm_jax.core.a"}}, 1, 0),
        ({"fapm_jax.core.a": {"fapm_jax.studies.x"}, "fapm_jax.studies.x": set()}, 0, 1),
        ({"fapm_jax.data.a": {"fapm_jax"}, "fapm_jax": {"fapm_jax.data.a"}}, 1, 1),
        (
            {
                "fapm_jax.cli.main": {"fapm_jax", "fapm_jax.core.a"},
                "fapm_jax.core.a": set(),
                "fapm_jax": set(),
            },
            0,
            0,
        ),
    ],
)
def test_the_checks_can_fail(graph, n_cycles, n_bad):
    assert len(cycles(graph)) == n_cycles
    assert len(against_layers(graph)) == n_bad
