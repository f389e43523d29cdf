"""Work a request leaves for after its answer has been sent, in the same worker.

WSGI servers close the response once its last byte is written (gunicorn's sync worker: before
it takes the next request), so the client does not wait for this work, and the worker does it
before serving anyone else. It runs outside the request and app contexts; it must log its own
failures, since nobody is left to answer.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import after_this_request
from werkzeug.wrappers import Response


def after_response(work: Callable[[], None]) -> None:
    @after_this_request
    def schedule(response: Response) -> Response:
        response.call_on_close(work)
        return response
