"""Work left for after the answer: in the worker process itself once the response is closed
under a one-request-per-process server (gunicorn's sync workers), else on a background thread."""

from __future__ import annotations

import threading

import pytest
from flask import Flask

from appliance.web.after_response import after_response, wait_for_work_left

SYNC_WORKER = {"wsgi.multiprocess": True, "wsgi.multithread": False}
THREADED = {"wsgi.multiprocess": False, "wsgi.multithread": True}


@pytest.fixture
def app_and_log() -> tuple[Flask, list[tuple[str, int]]]:
    app = Flask(__name__)
    log: list[tuple[str, int]] = []

    @app.get("/")
    def answer() -> str:
        after_response(lambda: log.append(("work", threading.get_ident())))
        log.append(("answer", threading.get_ident()))
        return "answered"

    return app, log


def test_under_sync_workers_the_work_runs_in_the_worker_once_the_response_closes(app_and_log) -> None:
    app, log = app_and_log
    response = app.test_client().get("/", environ_overrides=SYNC_WORKER, buffered=False)
    assert b"".join(response.response) == b"answered"
    assert [what for what, _ in log] == ["answer"]  # the body is out; the work waits for the close
    response.close()
    assert [what for what, _ in log] == ["answer", "work"]
    assert log[0][1] == log[1][1] == threading.get_ident()


def test_under_threads_the_work_runs_on_the_background_thread(app_and_log) -> None:
    app, log = app_and_log
    response = app.test_client().get("/", environ_overrides=THREADED)
    assert response.get_data() == b"answered"
    wait_for_work_left()
    assert [what for what, _ in log] == ["answer", "work"]
    assert log[1][1] != threading.get_ident()
