"""Open loop at the experiment's ``load.rate`` (uniform or Poisson), latency from scheduled time.
Single process only (the rate lives in this process): no ``--processes`` / workers.

    SERVECMP_TARGET=torchserve-rest-json SERVECMP_ADDRESS=127.0.0.1:8080 \
      locust -f loadtests/locustfiles/open_loop.py --headless
"""

import locust  # noqa: F401  - gevent patching first

import servecmp.load.locustfile_setup  # noqa: F401
from servecmp.load.shapes import OpenLoopShape  # noqa: F401
from servecmp.load.users import OpenLoopUser  # noqa: F401
