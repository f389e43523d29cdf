"""Work a request leaves for after its answer: one background thread per process runs it.

The answer does not wait for the work, and one thread, first come first served, keeps such
work (the certificate of completion) from piling up on the CPU beside the requests. It is not
tied to the WSGI server closing the response (werkzeug's development server may not close it
until the browser drops the connection). The work runs outside the request and app contexts,
must log its own failures since nobody is left to answer, and must be redone by a job when a
worker stops before it ran.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from flask import after_this_request
from werkzeug.wrappers import Response

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def after_response(work: Callable[[], None]) -> None:
    """Run `work` once this request has produced its answer."""

    @after_this_request
    def submit(response: Response) -> Response:
        _worker().submit(work)
        return response


def wait_for_work_left(timeout: float = 60) -> None:
    """Wait until the work submitted so far has run (tests, and anyone about to check its result)."""
    _worker().submit(lambda: None).result(timeout=timeout)


def _worker() -> ThreadPoolExecutor:
    # made on first use: in the gunicorn worker after the fork, never in the master
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="after-response")
        return _executor
