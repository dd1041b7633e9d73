"""`make test-fast` sends no load: every test that runs a step process or starts a load-test
double (directly or through a fixture of its module) carries `load` or a server marker, so the
fast set (Makefile FAST_EXCLUDED) leaves it out. Read from the test files' syntax, nothing run."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# calls that start a step process or a load-test double
LOAD_CALLS = {"run_step", "start_echo_server", "breakdown_step"}
# any of these keeps a test out of `make test-fast` (Makefile SERVER_MARKERS + load)
EXCLUDING = {
    "load",
    "slow",
    "torchserve",
    "kserve",
    "tfserving",
    "triton",
    "rayserve",
    "docker",
    "cluster",
    "prometheus",
    "browser",
}


def _marks(node: ast.expr) -> set[str]:
    """Marker names in ``pytest.mark.x``, ``pytest.mark.x(...)`` or a list of them."""
    if isinstance(node, ast.List | ast.Tuple):
        return set().union(*(_marks(e) for e in node.elts)) if node.elts else set()
    if isinstance(node, ast.Call):
        return _marks(node.func)
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
    ):
        return {node.attr}
    return set()


def _calls(fn: ast.AST) -> set[str]:
    out = set()
    for n in ast.walk(fn):
        if isinstance(n, ast.Call):
            f = n.func
            out.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return out


def unmarked_load_tests(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    module_marks: set[str] = set()
    functions: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            module_marks |= _marks(node.value)
        elif isinstance(node, ast.FunctionDef):
            functions[node.name] = node
    loading = {name for name, fn in functions.items() if _calls(fn) & LOAD_CALLS}
    out = []
    for name, fn in functions.items():
        if not name.startswith("test_"):
            continue
        params = {a.arg for a in fn.args.args}
        if name not in loading and not (params & loading):
            continue
        marks = module_marks.union(*(_marks(d) for d in fn.decorator_list))
        if not marks & EXCLUDING:
            out.append(f"{path.name}::{name}")
    return out


def test_the_checker_finds_an_unmarked_load_test(tmp_path: Path) -> None:
    f = tmp_path / "test_x.py"
    f.write_text(
        "import pytest\n"
        "@pytest.fixture\n"
        "def endpoint():\n    return start_echo_server(1.0)\n"
        "def test_a(endpoint): pass\n"
        "@pytest.mark.load\n"
        "def test_b(endpoint): pass\n"
        "def test_c(tmp_path): runner.run_step(spec, tmp_path)\n"
        "def test_d(): pass\n"
    )
    assert unmarked_load_tests(f) == ["test_x.py::test_a", "test_x.py::test_c"]
    f.write_text(
        f.read_text().replace("import pytest\n", "import pytest\npytestmark = [pytest.mark.slow]\n")
    )
    assert unmarked_load_tests(f) == []


def test_every_test_that_sends_load_is_left_out_of_test_fast() -> None:
    found = [t for p in sorted(TESTS.glob("test_*.py")) for t in unmarked_load_tests(p)]
    assert not found, "mark these @pytest.mark.load (docs/testing.md):\n" + "\n".join(found)
