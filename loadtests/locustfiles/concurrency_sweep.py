"""Closed-loop concurrency sweep over the experiment's ``load.concurrency``.

    SERVECMP_TARGET=torchserve-rest-json SERVECMP_ADDRESS=127.0.0.1:8080 \
      locust -f loadtests/locustfiles/concurrency_sweep.py --headless
"""

import locust  # noqa: F401  - gevent patching first

import servecmp.load.locustfile_setup  # noqa: F401
from servecmp.load.shapes import ConcurrencySweepShape  # noqa: F401
from servecmp.load.users import ClosedLoopUser  # noqa: F401
