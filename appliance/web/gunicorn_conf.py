"""gunicorn settings that are part of the appliance, not of the site.

`appliance serve` passes bind, workers and timeout on the command line.
"""

from typing import Any

from prometheus_client import multiprocess

from appliance.foreign_warnings import silence_foreign_deprecations

# Set in the master before the fork, so every worker inherits it.
silence_foreign_deprecations()

# Each worker imports the app (and so the PKCS#11 module, lazily) after the fork;
# a module initialised in the master would be shared across processes.
preload_app = False
# Client address and scheme come from appliance.web.proxy and the configured
# trusted_proxies only; gunicorn must not act on forwarded headers or its env vars.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
proxy_allow_ips = ""
worker_tmp_dir = "/dev/shm"  # noqa: S108 - heartbeat files, in RAM as gunicorn advises
accesslog = "-"
errorlog = "-"
graceful_timeout = 20
max_requests = 2000
max_requests_jitter = 200


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)
