"""Malformed requests get a 4xx with an explanation, never a 500 or a stack trace."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.conftest import csrf_token_from


def _assert_clean_4xx(response, expected: int, *, api: bool) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == expected
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "werkzeug" not in body.lower()
    if api:
        assert response.mimetype == "application/problem+json"
        problem = response.get_json()
        assert problem["status"] == expected and problem["title"] and problem["detail"]
    else:
        assert response.mimetype == "text/html"
        assert "<h1>" in body


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/v1/no-such-thing", 404),
        ("DELETE", "/api/v1/", 405),
        ("PATCH", "/healthz", 405),
        ("GET", "/%ff%fe", 404),
        ("GET", "/../../etc/passwd", 404),
    ],
)
def test_unknown_paths_and_methods(client: FlaskClient, method: str, path: str, expected: int) -> None:
    response = client.open(path, method=method)
    _assert_clean_4xx(response, expected, api=path.startswith("/api/"))


def test_method_not_allowed_names_the_allowed_methods(client: FlaskClient) -> None:
    response = client.delete("/api/v1/")
    assert "GET" in response.headers["Allow"]


def test_oversized_body_is_413(client: FlaskClient, app) -> None:  # type: ignore[no-untyped-def]
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/language", data={"locale": "x" * 4096})
    _assert_clean_4xx(response, 413, api=False)


def test_garbage_form_fields_are_ignored_not_crashing(client: FlaskClient) -> None:
    token = csrf_token_from(client)
    response = client.post("/language", data={"locale": "\x00" * 10 + "<script>", "csrf_token": token})
    assert response.status_code == 303
    assert '<html lang="en">' in client.get("/").get_data(as_text=True)


def test_broken_multipart_body_is_4xx(client: FlaskClient) -> None:
    response = client.post(
        "/language",
        data=b'--xx\r\nContent-Disposition: form-data; name="locale"\r\n\r\nen',
        content_type="multipart/form-data; boundary=xx",
    )
    _assert_clean_4xx(response, 403, api=False)  # refused before anything is read as valid input


def test_bad_accept_language_falls_back(client: FlaskClient) -> None:
    response = client.get("/", headers={"Accept-Language": ";;;q=abc,,**"})
    assert response.status_code == 200


def test_non_json_body_to_api_is_refused_cleanly(client: FlaskClient) -> None:
    response = client.post("/api/v1/", data="{not json", content_type="application/json")
    _assert_clean_4xx(response, 405, api=True)
