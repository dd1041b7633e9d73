"""The report labels a target a native-encoding extra exactly when its server's adapter does
(every encoding after the first it lists), so extras never enter the common-encoding pairs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from servecmp.experiment import Target
from servecmp.report.cells import target_info


def _run() -> Any:
    return SimpleNamespace(
        steps=[], meta=SimpleNamespace(payload={}), unavailable_reason=lambda name: None
    )


@pytest.mark.parametrize(
    ("server", "protocol", "encoding"),
    [
        ("torchserve", "rest", None),
        ("torchserve", "rest", "raw"),
        ("kserve", "rest", None),
        ("kserve", "rest", "oip"),
        ("kserve", "rest", "oip-binary"),
        ("triton", "rest", None),
        ("triton", "rest", "oip-binary"),
        ("rayserve", "rest", "oip-binary"),
        ("tfserving", "rest", "b64"),
    ],
)
def test_report_and_experiment_agree_on_native_extras(
    server: str, protocol: str, encoding: str | None
) -> None:
    t = Target(server=server, protocol=protocol, encoding=encoding)  # type: ignore[arg-type]
    info = target_info(_run(), t.name)
    assert info.native_extra is t.is_native_extra, t.name
    assert info.kind == ("native-encoding extra" if t.is_native_extra else "server")


def test_an_unregistered_servers_target_keeps_the_old_rule() -> None:
    assert target_info(_run(), "gone-rest-raw").native_extra
    assert not target_info(_run(), "gone-rest-json").native_extra
