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
    for cmd in ("validate", "configs", "export", "parity", "run", "steps", "report"):
        assert cmd in out


def test_validate_good_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "experiments/quick.yaml")]) == 0
    assert "torchserve-rest-raw  (native-encoding extra)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "targets": [{"server": "torchserve", "protocol": "soap"}]}))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "targets.0.protocol" in err


def test_configs_writes_the_kubernetes_files(tmp_path: Path) -> None:
    assert main(["configs", str(ROOT / "experiments/quick.yaml"), "--out", str(tmp_path)]) == 0
    assert "inference_address=http://0.0.0.0:8080" in (tmp_path / "torchserve/config.properties").read_text()
    assert (tmp_path / "tfserving/flags.txt").read_text().startswith("--port=8500")


def test_steps_refuses_a_non_loopback_address_without_cluster_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="refusing to send load"):
        main(["steps", str(ROOT / "experiments/quick.yaml"), "--target", "torchserve-rest-json",
              "--address", "192.168.1.10:8080", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run" / "steps.jsonl").exists()


def test_run_rejects_unknown_target(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="none of"):
        main(["run", str(ROOT / "experiments/quick.yaml"), "--target", "nope",
              "--runs", str(tmp_path), "--artifacts", str(tmp_path / "b")])
