"""The KServe image of the kind path (deploy/kind/kserve.Dockerfile): the project's pins, a
non-root user the chart runs as, an entrypoint that runs servecmp/servers/kserve/model_server.py, and
generated flags that script (and KServe 0.21.0's own parser) accept. No Docker needed."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from helm_util import CHART, KIND_DIR, ROOT, experiment

from servecmp import versions
from servecmp.cluster import images

DOCKERFILE = KIND_DIR / "kserve.Dockerfile"
MODEL_SERVER = ROOT / "servecmp" / "servers" / "kserve" / "model_server.py"


def _pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for d in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][^;\s]*)", d)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def _stage() -> images.Stage:
    (stage,) = images.parse_dockerfile(DOCKERFILE)
    return stage


def test_kserve_image_uses_the_project_pins() -> None:
    stage = _stage()
    run = " ".join(stage.runs)
    assert f"kserve=={versions.KSERVE_VERSION}" in run
    assert f"torch=={_pins()['torch']}" in run and "download.pytorch.org/whl/cpu" in run
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    py = re.fullmatch(r"python:(\d+\.\d+)[\w.-]*", stage.base)
    assert py and requires == f">={py.group(1)}", (stage.base, requires)
    assert not stage.base.endswith(":latest") and ":" in stage.base  # base pinned by tag


def test_chart_runs_the_image_as_its_non_root_user() -> None:
    stage = _stage()
    vals = yaml.safe_load((CHART / "charts" / "kserve" / "values.yaml").read_text())
    py = re.search(r"python:(\d+\.\d+)", stage.base).group(1)  # type: ignore[union-attr]
    assert vals["image"]["repository"] == "servecmp/kserve"
    assert vals["image"]["tag"] == f"kserve{versions.KSERVE_VERSION}-py{py}-torch{_pins()['torch']}"
    uid, gid = (int(x) for x in (stage.user or "").split(":"))
    sc = vals["securityContext"]
    assert uid > 0 and (sc["runAsUser"], sc["runAsGroup"]) == (uid, gid)
    assert (
        sc["readOnlyRootFilesystem"] is True and stage.env.get("HOME") == "/tmp"
    )  # /tmp: an emptyDir


def test_entrypoint_runs_the_copied_model_server_script() -> None:
    stage = _stage()
    (copy,) = [c for c in stage.copies if c.from_stage is None]
    assert copy.sources == ["servecmp/servers/kserve/model_server.py"]
    assert stage.entrypoint[:1] == ["python"] and stage.entrypoint[-1] == copy.dest
    assert images.context_sources(DOCKERFILE) == ["servecmp/servers/kserve/model_server.py"]


def test_tag_changes_with_the_script(tmp_path: Path) -> None:
    """The content tag covers the script the image runs (an edited model server gets a new image)."""
    ctx = tmp_path / "ctx"
    (ctx / "servecmp" / "servers" / "kserve").mkdir(parents=True)
    (ctx / "servecmp" / "servers" / "kserve" / "model_server.py").write_text("print(1)\n")
    a = images.image_tag(DOCKERFILE, ctx, prefix="p")
    (ctx / "servecmp" / "servers" / "kserve" / "model_server.py").write_text("print(2)\n")
    b = images.image_tag(DOCKERFILE, ctx, prefix="p")
    assert a != b and a.startswith("p-") and len(a) == len("p-") + 12


def _parser_flags(path: Path, parser_name: str) -> set[str]:
    """``--flag`` names registered with ``<parser_name>.add_argument`` in a Python file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == parser_name
        ):
            out |= {
                a.value
                for a in node.args
                if isinstance(a, ast.Constant) and str(a.value).startswith("--")
            }
    return out


def _kserve_model_server() -> Path | None:
    """kserve 0.21.0's own model_server.py from an installed wheel (its venv), if present."""
    for venv in (ROOT / ".venv-kserve", Path("/tmp/kvenv")):
        for f in sorted(venv.glob("lib/python3*/site-packages/kserve/model_server.py")):
            return f
    return None


def test_generated_flags_are_accepted_by_the_entrypoint(tmp_path: Path) -> None:
    """Every generated flag is one of model_server.py's own (``ours``) or KServe's parser's."""
    # a missing entrypoint is a failure, not a skip: a rename must not make this check vanish
    assert MODEL_SERVER.is_file(), f"{MODEL_SERVER} is gone: the image's entrypoint is checked here"
    upstream = _kserve_model_server()
    if upstream is None:
        pytest.skip("no kserve wheel installed (.venv-kserve): scripts/setup.sh installs it")
    known = _parser_flags(MODEL_SERVER, "ours") | _parser_flags(upstream, "parser")
    assert {"--model_dir", "--http_port", "--grpc_port", "--model_name"} <= known
    from servecmp.configgen import Placement
    from servecmp.servers import registry

    rendered = registry.get("kserve").render(experiment(), Placement.kubernetes())
    from servecmp.servers.kserve.config import read_flags

    flags = read_flags(rendered.files["flags.txt"])
    unknown = [f for f in flags if f.split("=", 1)[0] not in known]
    assert not unknown, (
        f"flags neither model_server.py nor kserve {versions.KSERVE_VERSION} parse: {unknown}"
    )
