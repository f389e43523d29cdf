"""A signed-in person whose request finds the database gone gets the appliance's own 503
page (with its navigation), not a bare server error from inside the error handler."""

from __future__ import annotations

import os
import shutil

from flask import Flask

from tests.web.conftest import sign_in


def test_a_signed_in_page_with_the_database_gone_is_a_clear_503(admin_app: Flask) -> None:
    client = admin_app.test_client()
    sign_in(client)
    assert client.get("/account").status_code == 200
    services = admin_app.extensions["appliance"]
    services.engine.dispose()
    database_file = services.config.database.url.removeprefix("sqlite:///")
    shutil.move(database_file, database_file + ".away")
    os.mkdir(database_file)  # every connection attempt now fails
    response = client.get("/account")
    page = response.get_data(as_text=True)
    assert response.status_code == 503, page
    assert response.headers["Retry-After"]
    assert "Temporarily unavailable" in page and 'id="nav-sign-in"' in page
    assert database_file not in page
