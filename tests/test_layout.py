"""The documentation cannot go stale against the package's modules.

* Every module of ``fapm_jax/`` (each ``.py`` file but ``__init__.py``) has a line in the
  README's layout section and a ``::: fapm_jax.…`` entry on its subpackage's API page in
  ``docs/api/``, and every path or module named there exists.
* The README stays a front door: at most 12,000 characters, its Quickstart exactly two shell
  lines in one fenced block, the second of which is the test command CI runs.

A module added without documentation fails here, with the lines to add in the message.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "fapm_jax"
README = ROOT / "README.md"
API = ROOT / "docs" / "api"
MKDOCS = ROOT / "mkdocs.yml"
README_LIMIT = 12_000
QUICKSTART = (
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && fapm run',
    "python -m pytest -q -n 2 --dist loadgroup",
)

_ITEM = re.compile(r"^(?P<indent> *)[-*] `(?P<path>[^`]+)`")
_DIRECTIVE = re.compile(r"^:::\s+(?P<name>[\w.]+)\s*$", re.MULTILINE)


def package_modules() -> set[str]:
    """Dotted names of every module of the package, ``__init__`` files excluded."""
    return {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in PKG.rglob("*.py")
        if p.name != "__init__.py" and "__pycache__" not in p.parts
    }


def subpackages() -> set[str]:
    """Repository-relative paths (``fapm_jax/core/``) of the package's subpackages."""
    return {
        p.parent.relative_to(ROOT).as_posix() + "/"
        for p in PKG.rglob("__init__.py")
        if p.parent != PKG and "__pycache__" not in p.parts
    }


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section of a markdown text (up to the next ``## ``)."""
    m = re.search(rf"^## {re.escape(title)}[ \t]*\n(?P<body>.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert m, f"README.md has no '## {title}' section"
    return m.group("body")


def layout_paths() -> list[str]:
    """Repository-relative paths named by the README's layout list, nested items resolved
    against the folder of the item they are nested in (``- `fapm_jax/core/``` then
    ``  - `fit.py``` names ``fapm_jax/core/fit.py``)."""
    stack: list[tuple[int, str]] = []
    paths = []
    for line in section(README.read_text(encoding="utf-8"), "Layout").splitlines():
        m = _ITEM.match(line)
        if not m:
            continue
        indent, token = len(m.group("indent")), m.group("path")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        path = parent + token if parent.endswith("/") else token
        stack.append((indent, path))
        paths.append(path)
    return paths


def as_module(path: str) -> str | None:
    """``fapm_jax/core/fit.py`` -> ``fapm_jax.core.fit``; None for anything else."""
    if not (path.startswith("fapm_jax/") and path.endswith(".py")) or path.endswith("/__init__.py"):
        return None
    return path[: -len(".py")].replace("/", ".")


def api_pages() -> dict[str, list[str]]:
    """Page name (``core`` for ``docs/api/core.md``) -> the objects of its ``:::`` entries."""
    return {p.stem: _DIRECTIVE.findall(p.read_text(encoding="utf-8")) for p in sorted(API.glob("*.md"))}


def page_of(module: str) -> str:
    """The API page a module belongs on: its top-level subpackage (``fapm_jax.core.fit`` ->
    ``core``), or the module itself when it sits directly in the package (``fapm_jax.cli``)."""
    return module.split(".")[1]


# --------------------------------------------------------------------------- README layout


def test_package_has_modules():
    # guards the walk itself: an empty set would make the tests below pass vacuously
    assert {"fapm_jax.core.fit", "fapm_jax.core.model"} <= package_modules()


def missing_from_readme(modules: set[str]) -> list[str]:
    """The modules of ``modules`` that README.md's layout section does not list."""
    listed = {m for m in map(as_module, layout_paths()) if m}
    return sorted(modules - listed)


def test_readme_layout_lists_every_module():
    missing = missing_from_readme(package_modules())
    assert not missing, "modules missing from README.md's layout section: " + ", ".join(
        m.replace(".", "/") + ".py" for m in missing
    )


def test_readme_layout_lists_every_subpackage():
    missing = sorted(subpackages() - set(layout_paths()))
    assert not missing, f"subpackages missing from README.md's layout section: {missing}"


def test_readme_layout_names_only_existing_paths():
    paths = layout_paths()
    assert paths, "README.md's layout section lists nothing"
    gone = [p for p in paths if not (ROOT / p).exists() or (p.endswith("/") and not (ROOT / p).is_dir())]
    assert not gone, f"README.md's layout section names paths that do not exist: {gone}"


def test_readme_layout_has_no_duplicates():
    paths = layout_paths()
    dup = sorted({p for p in paths if paths.count(p) > 1})
    assert not dup, f"README.md's layout section lists these twice: {dup}"


# --------------------------------------------------------------------------- API pages


def missing_from_api(modules: set[str]) -> list[str]:
    """The modules of ``modules`` that no ``:::`` entry of docs/api/ documents."""
    documented = {name for names in api_pages().values() for name in names}
    return sorted(modules - documented)


def test_api_pages_cover_every_module():
    missing = missing_from_api(package_modules())
    assert not missing, "modules without an API entry; add to docs/api/<subpackage>.md: " + "; ".join(
        f"::: {m} (docs/api/{page_of(m)}.md)" for m in missing
    )


def test_api_entries_name_existing_modules():
    modules = package_modules()
    packages = {"fapm_jax"} | {p.rstrip("/").replace("/", ".") for p in subpackages()}
    unknown = sorted(
        name for names in api_pages().values() for name in names if name not in modules | packages
    )
    assert not unknown, f"docs/api/ documents modules that do not exist: {unknown}"


def test_api_entries_are_on_their_subpackage_page():
    misplaced = [
        f"{name} on docs/api/{page}.md"
        for page, names in api_pages().items()
        for name in names
        if name in package_modules() and page_of(name) != page
    ]
    assert not misplaced, f"API entries on the wrong page: {misplaced}"
    entries = [name for names in api_pages().values() for name in names]
    dup = sorted({n for n in entries if entries.count(n) > 1})
    assert not dup, f"modules documented twice in docs/api/: {dup}"


def test_api_pages_are_in_the_nav():
    nav = MKDOCS.read_text(encoding="utf-8")
    pages = set(api_pages()) | {page_of(m) for m in package_modules()}
    missing = sorted(p for p in pages if not re.search(rf"^\s*-\s.*\bapi/{re.escape(p)}\.md\s*$", nav, re.M))
    assert not missing, "API pages missing from mkdocs.yml's nav: " + ", ".join(
        f"api/{p}.md" for p in missing
    )


def test_checks_report_an_undocumented_module():
    # the checks are real: a module that neither the README nor docs/api/ names is reported
    probe = "fapm_jax.core.zz_undocumented_probe"
    modules = package_modules() | {probe}
    assert probe in missing_from_readme(modules)
    assert probe in missing_from_api(modules)


# --------------------------------------------------------------------------- README front door


def test_readme_length():
    n = len(README.read_text(encoding="utf-8"))
    assert n <= README_LIMIT, f"README.md has {n:,} characters, more than {README_LIMIT:,}"


def test_quickstart_is_two_lines_in_one_block():
    body = section(README.read_text(encoding="utf-8"), "Quickstart")
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", body, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"the Quickstart has {len(blocks)} fenced blocks, not one"
    lines = [ln for ln in blocks[0].splitlines() if ln.strip()]
    assert tuple(lines) == QUICKSTART, f"the Quickstart block must be exactly {QUICKSTART}, got {lines}"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = QUICKSTART[1].removeprefix("python ")
    assert re.search(rf'"\$venv/bin/python" {re.escape(test_command)}\s*$', ci, re.MULTILINE), (
        f".ci/run does not run the README's test command ({QUICKSTART[1]})"
    )
