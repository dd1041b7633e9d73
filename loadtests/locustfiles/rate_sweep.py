"""Rate sweep over the experiment's ``load.rates``: stops at the first rate whose p99 breaks
``load.slo_p99_ms`` and logs the last passing rate. Single process only.

    SERVECMP_TARGET=torchserve-rest-json SERVECMP_ADDRESS=127.0.0.1:8080 \
      locust -f loadtests/locustfiles/rate_sweep.py --headless
"""

import locust  # noqa: F401  - gevent patching first

import servecmp.load.locustfile_setup  # noqa: F401
from servecmp.load.shapes import RateSweepShape  # noqa: F401
from servecmp.load.users import OpenLoopUser  # noqa: F401
