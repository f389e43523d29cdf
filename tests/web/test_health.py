"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import logging
import shutil

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.config import AppConfig


def test_healthz_answers(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_readyz_reports_each_dependency(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"status": "ok"}
    assert body["checks"]["storage"] == {"status": "ok"}


def test_readyz_is_503_when_the_store_is_gone(
    app: Flask, config: AppConfig, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.rmtree(config.storage.path)
    with caplog.at_level(logging.WARNING, logger="appliance.web.health"):
        response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    body = response.get_json()
    # status words only: the path is in the log, never in the answer
    assert body["checks"]["storage"] == {"status": "unavailable"}
    assert str(config.storage.path) not in response.get_data(as_text=True)
    assert str(config.storage.path) in caplog.text
    assert body["checks"]["database"] == {"status": "ok"}


def test_readyz_is_503_when_the_database_is_gone(app: Flask, config: AppConfig) -> None:
    services = app.extensions["appliance"]
    services.engine.dispose()
    database_file = config.database.url.removeprefix("sqlite:///")
    shutil.move(database_file, database_file + ".away")
    # A folder where the database file was makes every connection attempt fail.
    import os

    os.mkdir(database_file)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == {"status": "unavailable"}
    assert database_file not in response.get_data(as_text=True)


def test_metrics_count_requests(client: FlaskClient) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'appliance_http_requests_total{endpoint="health.healthz",method="GET",status="200"}' in text
    assert "appliance_http_request_duration_seconds_bucket" in text
