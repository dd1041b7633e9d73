"""ONE place that turns an experiment into every server's configuration files.

The local runtime writes these files into the run directory and starts the servers from them;
Helm receives the Kubernetes placement's files with ``--set-file``. Nothing else writes a server
config, so both paths run the same settings.
"""

from servecmp.configgen.placement import Placement
from servecmp.configgen.render import GeneratedConfigs, render_all, write_configs

__all__ = ["GeneratedConfigs", "Placement", "render_all", "write_configs"]
