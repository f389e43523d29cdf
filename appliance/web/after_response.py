"""Work a request leaves for after its answer (automatic seals, the certificate of completion).

The answer does not wait for the work. Where it runs depends on the server:

* A server that handles one request per process at a time, with several processes (gunicorn's
  sync workers, as `appliance serve` runs it): in the same process, once the answer has been
  written (when the server closes the response). Until the work is done that process takes
  no new request, so the other workers take them, and the work gets a CPU of its own instead
  of competing for this process's interpreter lock with the next request.
* Any other server (threads; werkzeug's development server, which may hold a response open
  until the browser drops the connection; the test client): one background thread per
  process, first come first served, so such work does not pile up on the CPU beside the
  requests.

The work runs outside the request and app contexts, must log its own failures since nobody
is left to answer, and must be redone by a job when a worker stops before it ran.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from flask import after_this_request, request
from werkzeug.wrappers import Response

from appliance.models import ContractState
from appliance.workflow.automatic_seals import seal_and_complete_or_log
from appliance.workflow.context import WorkflowContext
from appliance.workflow.views import ContractView

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def after_response(work: Callable[[], None]) -> None:
    """Run `work` once this request has produced its answer."""

    environ = request.environ
    one_request_per_process = environ.get("wsgi.multiprocess") and not environ.get("wsgi.multithread")

    @after_this_request
    def submit(response: Response) -> Response:
        if one_request_per_process:
            response.call_on_close(work)
        else:
            _worker().submit(work)
        return response


def follow_up(workflow: WorkflowContext, view: ContractView) -> None:
    """After a step that may have started a seal's turn (a send, an approval, a signature) or
    completed the contract: apply the seals the appliance applies itself, and make the
    certificate of completion, once the answer is sent."""
    completed_bare = view.state is ContractState.COMPLETED and not view.has_completion_certificate
    if view.state is ContractState.SIGNING or completed_bare:
        after_response(partial(seal_and_complete_or_log, workflow, view.id))


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
