"""The layout's rule, checked on the source: each part imports only the parts before it
(isa <- kernels <- chip <- compiler <- quant <- codesign <- tools), and every module of accelsim
lives in one part."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["isa", "kernels", "accelsim.chip", "accelsim.compiler", "accelsim.quant", "accelsim.codesign", "tools"]
TOOLS = {"accelsim.cli", "accelsim.__main__", "accelsim.demo", "accelsim.evaluate", "accelsim.zoo", "accelsim"}


def _part(module: str) -> str:
    for part in reversed(ORDER[:-1]):
        if module == part or module.startswith(part + "."):
            return part
    if module in TOOLS or module.startswith("accelsim.cli."):
        return "tools"
    raise AssertionError(f"{module} belongs to no part")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """Project modules a file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)  # `from . import zoo` names a module
    return {m for m in out if m.split(".")[0] in ("isa", "kernels", "accelsim")}


def _sources() -> list[Path]:
    return sorted(p for top in ("isa", "kernels", "accelsim") for p in (ROOT / top).rglob("*.py"))


def _violations(path: Path, module: str) -> list[str]:
    mine = ORDER.index(_part(module))
    bad = []
    for imported in sorted(_imports(path, module)):
        try:
            theirs = ORDER.index(_part(imported))
        except AssertionError:  # `from .x import name` adds "pkg.x.name": the module is "pkg.x"
            theirs = ORDER.index(_part(imported.rpartition(".")[0]))
        if theirs > mine:
            bad.append(f"{module} ({ORDER[mine]}) imports {imported} ({ORDER[theirs]})")
    return bad


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_one_way(path):
    assert _violations(path, _module_name(path)) == []


def test_the_check_sees_a_violation(tmp_path):
    """A chip module importing the compiler, or isa importing the chip, is caught."""
    probe = tmp_path / "probe.py"
    probe.write_text("from ..compiler import compile_graph\nfrom . import timing\n")
    assert _violations(probe, "accelsim.chip.probe") == [
        "accelsim.chip.probe (accelsim.chip) imports accelsim.compiler (accelsim.compiler)",
        "accelsim.chip.probe (accelsim.chip) imports accelsim.compiler.compile_graph (accelsim.compiler)"]
    probe.write_text("import accelsim.chip\n")
    assert _violations(probe, "isa.probe") == ["isa.probe (isa) imports accelsim.chip (accelsim.chip)"]
