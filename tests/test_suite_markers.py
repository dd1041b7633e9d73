"""`make test-fast` sends no load: every test that runs a step process or starts a load-test
double (directly or through a fixture of its module) carries `load` or a server marker, so the
fast set (Makefile FAST_EXCLUDED) leaves it out. Read from the test files' syntax, nothing run."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# calls that start a step process or a load-test double, or hold a friction probe's paced load
LOAD_CALLS = {"run_step", "start_echo_server", "breakdown_step", "recovery", "model_update"}
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
    # a function that calls a loading one loads too (a test's helper, a fixture's helper)
    loading: set[str] = set()
    while True:
        more = {n for n, fn in functions.items() if _calls(fn) & (LOAD_CALLS | loading)}
        if more <= loading:
            break
        loading |= more
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
        "def _step(d): return breakdown_step(d)\n"
        "def _twice(d): return [_step(d), _step(d)]\n"
        "def test_e(double): _twice(double)\n"
    )
    assert unmarked_load_tests(f) == [
        "test_x.py::test_a",
        "test_x.py::test_c",
        "test_x.py::test_e",
    ]
    f.write_text(
        f.read_text().replace("import pytest\n", "import pytest\npytestmark = [pytest.mark.slow]\n")
    )
    assert unmarked_load_tests(f) == []


def test_every_test_that_sends_load_is_left_out_of_test_fast() -> None:
    found = [t for p in sorted(TESTS.glob("test_*.py")) for t in unmarked_load_tests(p)]
    assert not found, "mark these @pytest.mark.load (docs/testing.md):\n" + "\n".join(found)


def long_event_frictions(path: Path) -> list[str]:
    """Experiment ``friction`` settings written as a dict literal without ``event_load``: a run
    of it holds the update and kill probes' load for the 10 s + 20 s default timeline each
    (tests/run_budget.py gives the short one)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        values: list[ast.expr] = []
        if isinstance(node, ast.Dict):
            values = [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "friction"
            ]
        elif isinstance(node, ast.Assign):
            values = [
                node.value
                for t in node.targets
                if isinstance(t, ast.Subscript)
                and isinstance(t.slice, ast.Constant)
                and t.slice.value == "friction"
            ]
        elif isinstance(node, ast.Call):
            values = [kw.value for kw in node.keywords if kw.arg == "friction"]
        for v in values:
            keys = (
                {k.value for k in v.keys if isinstance(k, ast.Constant)}
                if isinstance(v, ast.Dict)
                else {"event_load"}
            )
            if "event_load" not in keys:
                out.append((v.lineno, f"{path.name}:{v.lineno}"))
    return [where for _, where in sorted(out)]


def test_the_checker_finds_a_friction_without_event_load(tmp_path: Path) -> None:
    f = tmp_path / "test_x.py"
    f.write_text(
        'EXP = {"targets": [], "friction": {"startups": 1}}\n'
        'EXP["friction"] = {"startups": 2}\n'
        'OTHER = dict(EXP, friction={"startups": 1})\n'
        'OK = {"friction": {"startups": 1, "event_load": {"before_s": 1.0}}}\n'
        'ALSO_OK = {"friction": run_budget.friction()}\n'
    )
    assert long_event_frictions(f) == ["test_x.py:1", "test_x.py:2", "test_x.py:3"]


def test_every_experiment_in_the_tests_shortens_its_event_timelines() -> None:
    found = [t for p in sorted(TESTS.glob("test_*.py")) for t in long_event_frictions(p)]
    assert not found, (
        "set friction.event_load (tests/run_budget.py friction()) in these:\n" + "\n".join(found)
    )


def _make_variable(make: str, name: str) -> str:
    (line,) = [ln for ln in make.splitlines() if ln.startswith(f"{name} :=")]
    return line.split(":=", 1)[1].strip()


def test_the_markers_checked_here_are_the_ones_make_runs_serially() -> None:
    """`make test` runs server and load tests one at a time and the rest on 2 workers; the load
    check above is only worth something if its marker set is the Makefile's serial set."""
    make = (TESTS.parent / "Makefile").read_text()
    servers = set(_make_variable(make, "SERVER_MARKERS").split(" or "))
    assert _make_variable(make, "SERIAL") == "$(SERVER_MARKERS) or load"
    assert servers | {"load"} == EXCLUDING
    assert '-m "not ($(SERIAL))"' in make and '-m "$(SERIAL)"' in make
