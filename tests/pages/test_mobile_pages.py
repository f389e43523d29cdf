"""The Mobile access pages: each person's QR code (read back with zxing-cpp) and steps, their
WireGuard configuration shown once, and the system admin's overview; English and Chinese."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import secrets
from pathlib import Path

import zxingcpp
from PIL import Image

from appliance.auth.local_admin import create_local_admin
from tests.pages.conftest import PagesEnv, csrf_of, post_form
from tests.workflow.test_mobile import client_config


def qr_texts(page: str, image_id: str) -> list[str]:
    """What the QR codes in the <img id=image_id> data URI say."""
    found = re.search(rf'id="{image_id}" src="data:image/png;base64,([^"]+)"', page)
    assert found, f"no QR image {image_id}"
    image = Image.open(io.BytesIO(base64.b64decode(found.group(1))))
    return [code.text for code in zxingcpp.read_barcodes(image)]


def test_a_person_scans_the_address_and_collects_their_vpn_configuration_once(pages: PagesEnv) -> None:
    folder = pages.api.services.config.mobile.wireguard_clients_dir
    assert folder is not None
    config = Path(folder) / "bob.conf"
    bob = pages.browser("bob")
    assert 'href="/mobile"' in bob.get("/account").get_data(as_text=True)

    page = bob.get("/mobile").get_data(as_text=True)
    root = hashlib.sha256(pages.api.client().get("/pki/ca/root").data).hexdigest()
    link = f"http://127.0.0.1:9/.well-known/esign-configuration#ca-sha256={root}"
    assert qr_texts(page, "setup-qr") == [link]
    assert f'<code class="hash" id="root-ca-sha256">{root}</code>' in page
    assert 'id="vpn-none"' in page and 'id="vpn-form"' not in page

    text = client_config(base64.b64encode(secrets.token_bytes(32)).decode())
    config.write_text(text)
    try:
        page = bob.get("/mobile").get_data(as_text=True)
        shown = bob.post("/mobile/vpn", data={"csrf_token": csrf_of(page)})
        assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
        body = shown.get_data(as_text=True)
        assert qr_texts(body, "vpn-qr") == [text]
        download = re.search(r'download="bob.conf" href="data:text/plain;base64,([^"]+)"', body)
        assert download and base64.b64decode(download.group(1)).decode() == text

        page = bob.get("/mobile").get_data(as_text=True)
        assert 'id="vpn-collected"' in page and 'id="vpn-form"' not in page
        again = post_form(bob, "/mobile", "/mobile/vpn")
        assert again.status_code == 303
        assert "collected your VPN configuration already" in bob.get("/mobile").get_data(as_text=True)

        assert 'id="my-vpn"' in bob.get("/me").get_data(as_text=True)  # what is held about them
        exported = (
            pages.api.client().get("/api/v1/me/personal-data", headers=pages.api.auth("bob")).get_json()
        )
        assert exported["vpn_configurations"][0]["config_sha256"] == hashlib.sha256(text.encode()).hexdigest()
        chinese = pages.browser("bob", language="zh-CN").get("/mobile").get_data(as_text=True)
        assert "移动端访问" in chinese and "操作步骤" in chinese and "您已于" in chinese
    finally:
        config.unlink()


def test_the_system_admin_sees_what_the_app_is_told_and_who_collected(pages: PagesEnv) -> None:
    services = pages.api.services
    password = f"Break-Glass-{secrets.token_hex(6)}"
    create_local_admin(services.sessions, services.config.auth, services.clock, "mobile-admin", password)
    admin = pages.api.client()
    login = admin.get("/login").get_data(as_text=True)
    signed_in = admin.post(
        "/login", data={"username": "mobile-admin", "password": password, "csrf_token": csrf_of(login)}
    )
    assert signed_in.status_code == 303
    home = admin.get("/", follow_redirects=True).get_data(as_text=True)
    assert 'id="nav-mobile-admin"' in home

    folder = services.config.mobile.wireguard_clients_dir
    assert folder is not None
    config = Path(folder) / "dave.conf"
    config.write_text(client_config())
    try:
        page = admin.get("/admin/mobile").get_data(as_text=True)
    finally:
        config.unlink()
    assert "http://127.0.0.1:9/.well-known/esign-configuration" in page
    assert 'id="tls-none"' in page and qr_texts(page, "setup-qr")[0].startswith("http://127.0.0.1:9/")
    row = page.split('data-user="dave"', 1)[1].split("</tr>", 1)[0]
    assert "not yet" in row

    bob = pages.browser("bob")
    assert 'id="nav-mobile-admin"' not in bob.get("/").get_data(as_text=True)
    assert bob.get("/admin/mobile").status_code == 403
