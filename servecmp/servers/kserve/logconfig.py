"""KServe's logging as a knob: its own logging config with the per-request loggers' levels set.

KServe 0.21.0 logs every request by default (``kserve/logging.py`` ``KSERVE_LOG_CONFIG``, all at
INFO): uvicorn's access line (``uvicorn.access``), a timing line per REST request from
``PrintTimings`` on ``kserve.trace`` (``kserve/protocol/rest/server.py``, whatever
``--enable_latency_logging`` says; that flag only adds the per-predict line in ``model.py``) and
``grpc method: ...`` per gRPC call (``LoggingInterceptor`` on ``kserve``,
``kserve/protocol/grpc/interceptors.py``). ``--log_config_file`` (a ``.json`` goes to
``logging.config.dictConfig``) replaces that config in the parent and in every REST process
(``RESTServerProcess.target``).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

FILE = "log_config.json"
# The loggers whose INFO lines are per request; "quiet" raises them to WARNING.
PER_REQUEST = ("kserve", "kserve.trace", "uvicorn.access")


def config(level: str = "WARNING") -> dict[str, object]:
    """KServe 0.21.0's own ``KSERVE_LOG_CONFIG`` (formatters, handlers, loggers) with the
    per-request loggers at ``level``; everything else as upstream has it."""
    loggers: dict[str, dict[str, object]] = {
        "kserve": {"handlers": ["kserve"], "level": level, "propagate": False},
        "kserve.trace": {"handlers": ["kserve_trace"], "level": level, "propagate": False},
        "uvicorn": {"handlers": ["uvicorn"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["uvicorn_access"], "level": level, "propagate": False},
    }
    date = "%Y-%m-%d %H:%M:%S"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "kserve": {
                "()": "logging.Formatter",
                "datefmt": date,
                "fmt": "%(asctime)s.%(msecs)03d %(process)s %(name)s %(levelname)s "
                "[%(filename)s:%(funcName)s():%(lineno)s] %(message)s",
            },
            "kserve_trace": {
                "()": "logging.Formatter",
                "datefmt": date,
                "fmt": "%(asctime)s.%(msecs)03d %(process)s %(name)s %(message)s",
            },
            "uvicorn": {
                "()": "uvicorn.logging.DefaultFormatter",
                "datefmt": date,
                "use_colors": None,
                "fmt": "%(asctime)s.%(msecs)03d %(process)s %(name)s %(levelprefix)s %(message)s",
            },
            "uvicorn_access": {
                "()": "uvicorn.logging.AccessFormatter",
                "datefmt": date,
                "fmt": "%(asctime)s.%(msecs)03d %(name)s %(levelprefix)s %(client_addr)s "
                '%(process)s - "%(request_line)s" %(status_code)s',
            },
        },
        "handlers": {
            "kserve": {
                "formatter": "kserve",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "kserve_trace": {
                "formatter": "kserve_trace",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "uvicorn": {
                "formatter": "uvicorn",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "uvicorn_access": {
                "formatter": "uvicorn_access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": loggers,
    }


def quiet() -> str:
    return json.dumps(config("WARNING"), indent=2, sort_keys=True) + "\n"


def flag(config_dir: str) -> str:
    return f"--log_config_file={PurePosixPath(config_dir, FILE)}"
