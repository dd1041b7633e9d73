"""Tests that import Locust in-process. Locust monkey-patches the interpreter with gevent, which
must happen before ssl/requests are imported, so these run in their own pytest process
(tests/test_gevent_suite.py starts it) and the main suite never collects them."""

import locust  # noqa: F401  - first: gevent monkey-patching
