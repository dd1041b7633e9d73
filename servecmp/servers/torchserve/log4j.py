"""TorchServe's logging as a knob: its own default ``log4j2.xml`` with the loggers' levels set.

The text below is pytorch/serve v0.12.0 ``frontend/server/src/main/resources/log4j2.xml`` (the
default TorchServe runs with), with each logger's ``level`` a placeholder. That default logs
``org.pytorch.serve`` at DEBUG and every request's access line (``ACCESS_LOG``, ``NettyUtils`` and
``GRPCInterceptor``) and "Backend response time" (``WorkerThread``, INFO); ``org.pytorch.serve``
lines land twice in ``ts_log.log`` (its own appender plus the root's, additivity on).
TorchServe reads another file through ``vmargs=-Dlog4j.configurationFile=<URI>`` in
config.properties (docs/logging.md "Provide with config.properties"; ``ts/model_server.py``
splits ``vmargs`` on whitespace, so the path goes in as a percent-encoded ``file:`` URI).
"""

from __future__ import annotations

from pathlib import PurePosixPath

FILE = "log4j2.xml"

# Upstream's levels, logger -> level ("Root" for the root logger).
DEFAULT_LEVELS = {
    "ACCESS_LOG": "info",
    "io.netty": "error",
    "MODEL_LOG": "all",
    "MODEL_METRICS": "all",
    "org.apache": "off",
    "org.pytorch.serve": "debug",
    "TS_METRICS": "all",
    "Root": "info",
}
# "quiet": warnings and errors only, and org.pytorch.serve written once (no root additivity).
QUIET_LEVELS = {
    **DEFAULT_LEVELS,
    "ACCESS_LOG": "warn",
    "MODEL_LOG": "warn",
    "MODEL_METRICS": "warn",
    "org.pytorch.serve": "warn",
    "TS_METRICS": "warn",
    "Root": "warn",
}

TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration>
    <Appenders>
        <RollingFile
                name="access_log"
                fileName="${{env:LOG_LOCATION:-logs}}/access_log.log"
                filePattern="${{env:LOG_LOCATION:-logs}}/access_log.%d{{dd-MMM}}.log.gz">
            <PatternLayout pattern="%d{{ISO8601}} - %m%n"/>
            <Policies>
                <SizeBasedTriggeringPolicy size="100 MB"/>
                <TimeBasedTriggeringPolicy/>
            </Policies>
            <DefaultRolloverStrategy max="5"/>
        </RollingFile>
        <Console name="STDOUT" target="SYSTEM_OUT">
            <PatternLayout pattern="%d{{ISO8601}} [%-5p] %t %c - %m%n"/>
        </Console>
        <RollingFile
                name="model_log"
                fileName="${{env:LOG_LOCATION:-logs}}/model_log.log"
                filePattern="${{env:LOG_LOCATION:-logs}}/model_log.%d{{dd-MMM}}.log.gz">
            <PatternLayout pattern="%d{{ISO8601}} [%-5p] %t %c - %m%n"/>
            <Policies>
                <SizeBasedTriggeringPolicy size="100 MB"/>
                <TimeBasedTriggeringPolicy/>
            </Policies>
            <DefaultRolloverStrategy max="5"/>
        </RollingFile>
        <RollingFile name="model_metrics"
                     fileName="${{env:METRICS_LOCATION:-logs}}/model_metrics.log"
                     filePattern="${{env:METRICS_LOCATION:-logs}}/model_metrics.%d{{dd-MMM}}.log.gz">
            <PatternLayout pattern="%d{{ISO8601}} - %m%n"/>
            <Policies>
                <SizeBasedTriggeringPolicy size="100 MB"/>
                <TimeBasedTriggeringPolicy/>
            </Policies>
            <DefaultRolloverStrategy max="5"/>
        </RollingFile>
        <RollingFile
                name="ts_log"
                fileName="${{env:LOG_LOCATION:-logs}}/ts_log.log"
                filePattern="${{env:LOG_LOCATION:-logs}}/ts_log.%d{{dd-MMM}}.log.gz">
            <PatternLayout pattern="%d{{ISO8601}} [%-5p] %t %c - %m%n"/>
            <Policies>
                <SizeBasedTriggeringPolicy size="100 MB"/>
                <TimeBasedTriggeringPolicy/>
            </Policies>
            <DefaultRolloverStrategy max="5"/>
        </RollingFile>
        <RollingFile
                name="ts_metrics"
                fileName="${{env:METRICS_LOCATION:-logs}}/ts_metrics.log"
                filePattern="${{env:METRICS_LOCATION:-logs}}/ts_metrics.%d{{dd-MMM}}.log.gz">
            <PatternLayout pattern="%d{{ISO8601}} - %m%n"/>
            <Policies>
                <SizeBasedTriggeringPolicy size="100 MB"/>
                <TimeBasedTriggeringPolicy/>
            </Policies>
            <DefaultRolloverStrategy max="5"/>
        </RollingFile>
    </Appenders>
    <Loggers>
        <Logger name="ACCESS_LOG" level="{ACCESS_LOG}">
            <AppenderRef ref="access_log"/>
        </Logger>
        <Logger name="io.netty" level="{io_netty}" />
        <Logger name="MODEL_LOG" level="{MODEL_LOG}">
            <AppenderRef ref="model_log"/>
        </Logger>
        <Logger name="MODEL_METRICS" level="{MODEL_METRICS}">
            <AppenderRef ref="model_metrics"/>
        </Logger>
        <Logger name="org.apache" level="{org_apache}" />
        <Logger name="org.pytorch.serve" level="{org_pytorch_serve}"{additivity}>
            <AppenderRef ref="ts_log"/>
        </Logger>
        <Logger name="TS_METRICS" level="{TS_METRICS}">
            <AppenderRef ref="ts_metrics"/>
        </Logger>
        <Root level="{Root}">
            <AppenderRef ref="STDOUT"/>
            <AppenderRef ref="ts_log"/>
        </Root>
    </Loggers>
</Configuration>"""


def render(levels: dict[str, str], additivity: bool = True) -> str:
    """The log4j2.xml for ``levels`` (every key of DEFAULT_LEVELS)."""
    missing = sorted(set(DEFAULT_LEVELS) - set(levels))
    if missing:
        raise ValueError(f"log4j levels: missing logger(s) {', '.join(missing)}")
    return TEMPLATE.format(
        **{k.replace(".", "_"): v for k, v in levels.items()},
        additivity="" if additivity else ' additivity="false"',
    )


def quiet() -> str:
    return render(QUIET_LEVELS, additivity=False)


def vmarg(config_dir: str) -> str:
    """The JVM argument pointing log4j at ``<config_dir>/log4j2.xml`` (no whitespace: vmargs is
    split on it)."""
    return f"-Dlog4j.configurationFile={PurePosixPath(config_dir, FILE).as_uri()}"
