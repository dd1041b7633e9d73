"""TorchServe's logging as a knob: its own default ``log4j2.xml`` with the loggers' levels set.

The default is read from the installed TorchServe (the ``log4j2.xml`` inside
``ts/frontend/model-server.jar``, the file the server runs with when nothing overrides it:
pytorch/serve v0.12.0 ``frontend/server/src/main/resources/log4j2.xml``), so the quiet variant
differs from what the server would use only in the levels set here. That default logs
``org.pytorch.serve`` at DEBUG and every request's access line (``ACCESS_LOG``, ``NettyUtils`` and
``GRPCInterceptor``) and "Backend response time" (``WorkerThread``, INFO); ``org.pytorch.serve``
lines land twice in ``ts_log.log`` (its own appender plus the root's, additivity on).
TorchServe reads another file through ``vmargs=-Dlog4j.configurationFile=<URI>`` in
config.properties (docs/logging.md "Provide with config.properties"; ``ts/model_server.py``
splits ``vmargs`` on whitespace, so the path goes in as a percent-encoded ``file:`` URI).
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
import zipfile
from pathlib import PurePosixPath

FILE = "log4j2.xml"
ROOT_LOGGER = "Root"
# "quiet": warnings and errors only for the loggers that write per request or per metric, and
# org.pytorch.serve written once (no root additivity).
QUIET_LEVELS = {
    "ACCESS_LOG": "warn",
    "MODEL_LOG": "warn",
    "MODEL_METRICS": "warn",
    "org.pytorch.serve": "warn",
    "TS_METRICS": "warn",
    ROOT_LOGGER: "warn",
}


@functools.cache
def default_xml() -> str:
    """The ``log4j2.xml`` the installed TorchServe runs with by default."""
    from servecmp.load.clients.protos import torchserve_jar

    with zipfile.ZipFile(torchserve_jar()) as zf:
        return zf.read(FILE).decode()


def levels(xml: str) -> dict[str, str]:
    """logger name -> level (``Root`` for the root logger) of a log4j2 configuration."""
    root = ET.fromstring(xml)
    out = {lg.get("name", ""): lg.get("level", "") for lg in root.iter("Logger")}
    for r in root.iter("Root"):
        out[ROOT_LOGGER] = r.get("level", "")
    return out


def render(new_levels: dict[str, str], additivity: bool = True, base: str | None = None) -> str:
    """``base`` (default: TorchServe's own file) with ``new_levels`` set; every logger named must
    exist in it. ``additivity=False`` stops org.pytorch.serve lines reaching the root's appenders."""
    root = ET.fromstring(base if base is not None else default_xml())
    known = levels(ET.tostring(root, encoding="unicode"))
    unknown = sorted(set(new_levels) - set(known))
    if unknown:
        raise ValueError(f"log4j levels: no logger(s) {', '.join(unknown)} in TorchServe's {FILE}")
    for lg in root.iter("Logger"):
        name = lg.get("name", "")
        if name in new_levels:
            lg.set("level", new_levels[name])
        if name == "org.pytorch.serve" and not additivity:
            lg.set("additivity", "false")
    for r in root.iter("Root"):
        r.set("level", new_levels.get(ROOT_LOGGER, r.get("level", "")))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def quiet() -> str:
    return render(QUIET_LEVELS, additivity=False)


def vmarg(config_dir: str) -> str:
    """The JVM argument pointing log4j at ``<config_dir>/log4j2.xml`` (no whitespace: vmargs is
    split on it)."""
    return f"-Dlog4j.configurationFile={PurePosixPath(config_dir, FILE).as_uri()}"
