"""Closed-loop users against one target; the user count comes from ``-u`` or the web UI.

    SERVECMP_TARGET=torchserve-rest-json SERVECMP_ADDRESS=127.0.0.1:8080 \
      locust -f loadtests/locustfiles/closed_loop.py --headless -u 4 -r 4 -t 30s
"""

import locust  # noqa: F401  - gevent patching first

import servecmp.load.locustfile_setup  # noqa: F401  - --sc-* arguments, LoadContext
from servecmp.load.users import ClosedLoopUser  # noqa: F401
