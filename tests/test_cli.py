"""The command line: subcommands exist, bad input is a clear error, load never leaves loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from servecmp.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("validate", "configs", "export", "parity", "run", "steps", "report", "kind", "gen"):
        assert cmd in out


@pytest.mark.parametrize(
    ("argv", "function", "args", "kwargs"),
    [
        (["kind", "up", "exp.yaml"], "up", (Path("exp.yaml"),), {}),
        (
            ["kind", "load"],
            "load",
            (Path("loadtests/experiments/quick.yaml"),),
            {"targets": (), "recover": False, "engine": "steps", "locust_args": {}},
        ),
        (
            ["kind", "load", "e.yaml", "--target", "a", "--target", "b", "--recover"],
            "load",
            (Path("e.yaml"),),
            {"targets": ["a", "b"], "recover": True, "engine": "steps", "locust_args": {}},
        ),
        (
            ["kind", "load", "e.yaml", "--engine", "locust", "--users", "8", "--workers", "2"],
            "load",
            (Path("e.yaml"),),
            {
                "targets": (),
                "recover": False,
                "engine": "locust",
                "locust_args": {"users": 8, "workers": 2},
            },
        ),
        (["kind", "down"], "down", (), {}),
    ],
)
def test_kind_subcommands_reach_one_library_function_each(
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    function: str,
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> None:
    from servecmp.cluster import commands

    calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []
    monkeypatch.setattr(commands, function, lambda *a, **kw: calls.append((function, a, kw)) or 7)
    assert main(argv) == 7  # the library function's exit status is the command's
    assert calls == [(function, args, kwargs)]


@pytest.mark.parametrize("what", ["dashboards", "rules"])
def test_gen_check_passes_on_the_committed_files(
    what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gen", what, "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_makefile_targets_call_the_cli() -> None:
    make = (ROOT / "Makefile").read_text()
    for cmd in ("gen dashboards", "gen dashboards --check", "gen rules", "gen rules --check"):
        assert f"$(SERVECMP) {cmd}\n" in make, cmd
    # kind targets go through scripts/kind-*.sh: they check the prerequisites (docker, kind, helm,
    # kubectl versions), then hand over to the same library functions `servecmp kind` calls
    for script in ("kind-up.sh", "kind-load.sh", "kind-down.sh"):
        assert f"bash scripts/{script}" in make, script
        assert "-m servecmp.cli kind " in (ROOT / "scripts" / script).read_text(), script


def test_validate_good_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "loadtests/experiments/quick.yaml")]) == 0
    assert main(["validate", str(ROOT / "loadtests/experiments/encodings.yaml")]) == 0
    assert "torchserve-rest-raw  (native-encoding extra)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"name": "x", "targets": [{"server": "torchserve", "protocol": "soap"}]})
    )
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "targets.0.protocol" in err


def test_configs_writes_the_kubernetes_files(tmp_path: Path) -> None:
    assert (
        main(["configs", str(ROOT / "loadtests/experiments/quick.yaml"), "--out", str(tmp_path)])
        == 0
    )
    assert (
        "inference_address=http://0.0.0.0:8080"
        in (tmp_path / "torchserve/config.properties").read_text()
    )
    assert (tmp_path / "tfserving/flags.txt").read_text().startswith("--port=8500")


def test_steps_refuses_a_non_loopback_address_without_cluster_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="refusing to send load"):
        main(
            [
                "steps",
                str(ROOT / "loadtests/experiments/quick.yaml"),
                "--target",
                "torchserve-rest-json",
                "--address",
                "192.168.1.10:8080",
                "--out",
                str(tmp_path / "run"),
            ]
        )
    assert not (tmp_path / "run" / "steps.jsonl").exists()


def test_run_rejects_unknown_target(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="none of"):
        main(
            [
                "run",
                str(ROOT / "loadtests/experiments/quick.yaml"),
                "--target",
                "nope",
                "--runs",
                str(tmp_path),
                "--artifacts",
                str(tmp_path / "b"),
            ]
        )


def test_export_keeps_every_model_given(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`servecmp export --model a --model b` exports both (it used to keep only the last one)."""
    from servecmp.models import commands as models_commands

    seen: list[object] = []
    monkeypatch.setattr(
        models_commands,
        "export_command",
        lambda out, models=None, *a, **kw: seen.append(list(models or [])) or 0,
    )
    assert main(["export", "--model", "tiny", "--model", "resnet", "--out", str(tmp_path)]) == 0
    assert seen == [["tiny", "resnet"]]


def test_parity_keeps_every_model_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from servecmp.models import commands as models_commands

    seen: list[object] = []
    monkeypatch.setattr(
        models_commands,
        "parity_command",
        lambda models=None, *a, **kw: seen.append(list(models or [])) or 0,
    )
    assert main(["parity", "--model", "tiny", "--model", "resnet"]) == 0
    assert seen == [["tiny", "resnet"]]


def test_gen_names_an_adapter_that_cannot_be_loaded(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from servecmp.servers import registry

    monkeypatch.setattr(registry, "MODULES", {"nope": "servecmp.servers.no_such_server"})
    registry.get.cache_clear()
    try:
        assert main(["gen", "rules", "--check"]) == 2
    finally:
        registry.get.cache_clear()
    err = capsys.readouterr().err
    assert (
        "gen rules: a registered server adapter cannot be loaded" in err and "no_such_server" in err
    )


def test_every_module_the_kind_flow_runs_as_a_child_exists_with_an_entry_point() -> None:
    """`ops.module("X", ...)` runs `python -m servecmp.X`: a name left over from an old layout
    (deploy.kind.cluster) only failed on a real cluster."""
    import ast
    import importlib

    source = (ROOT / "servecmp" / "cluster" / "commands.py").read_text()
    names = {
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert {"cli", "cluster.cluster", "cluster.provenance"} <= names
    for name in names:
        assert callable(getattr(importlib.import_module(f"servecmp.{name}"), "main", None)), name


def test_kind_preflight_exit_3_when_it_does_not_fit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from servecmp.cluster import preflight

    seen: list[tuple[float, str, object, object]] = []

    def check(
        exp: object, cpus: float, source: str, path: str, *, replicas: object, loadgen_cpu: object
    ) -> tuple[bool, str]:
        seen.append((cpus, source, replicas, loadgen_cpu))
        return cpus >= 4, f"fits: {cpus >= 4}"

    monkeypatch.setattr(preflight, "check", check)
    monkeypatch.setattr(preflight, "host_cpus", lambda: (2.0, "this host"))
    quick = str(ROOT / "loadtests/experiments/quick.yaml")
    assert main(["kind", "preflight", quick]) == 3
    assert "fits: False" in capsys.readouterr().err
    assert (
        main(["kind", "preflight", quick, "--cpus", "8", "--replicas", "2", "--loadgen-cpu", "3"])
        == 0
    )
    assert "fits: True" in capsys.readouterr().out
    assert seen == [(2.0, "this host", None, None), (8.0, "--cpus", 2, 3.0)]


def test_kind_values_writes_the_helm_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "kind",
                "values",
                str(ROOT / "loadtests/experiments/quick.yaml"),
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert f"values: {tmp_path / 'experiment-values.yaml'}" in capsys.readouterr().out
    assert (tmp_path / "configs" / "torchserve" / "config.properties").is_file()
    assert (
        main(
            [
                "kind",
                "values",
                str(ROOT / "loadtests/experiments/quick.yaml"),
                "--out",
                str(tmp_path),
                "--print-set-file",
            ]
        )
        == 0
    )
    assert "torchserve.config.properties=" in capsys.readouterr().out
