"""The organisation admin's seal pages: create a seal (drawn), apply for its certificate with
the agreement, name its approvers, disable and enable it; nobody else reaches them; in
English and Chinese."""

from __future__ import annotations

import io
import re
import secrets

from PIL import Image

from tests.pages.conftest import PagesEnv, csrf_of, post_form


def test_an_org_admin_creates_certifies_and_manages_a_seal(pages: PagesEnv) -> None:
    alice = pages.browser("alice")
    listing = alice.get("/admin/seals").get_data(as_text=True)
    assert 'id="nav-seals"' in listing and 'id="new-seal-form"' in listing
    name = f"财务专用章 {secrets.token_hex(2)}"
    created = alice.post(
        "/admin/seals", data={"name": name, "kind": "finance", "csrf_token": csrf_of(listing)}
    )
    assert created.status_code == 303, created.get_data(as_text=True)
    page_path = created.headers["Location"]
    seal_id = int(re.search(r"/admin/seals/(\d+)$", page_path).group(1))  # type: ignore[union-attr]
    page = alice.get(page_path).get_data(as_text=True)
    assert "Finance seal" in page and "cannot be used" in page and 'id="accept-agreement"' in page

    image = alice.get(f"/admin/seals/{seal_id}/image.png")
    assert image.mimetype == "image/png"
    assert Image.open(io.BytesIO(image.data)).size == (600, 600)

    form = page.split(f'action="/admin/seals/{seal_id}/certificate"', 1)[1].split("</form>", 1)[0]
    fields = dict(re.findall(r'name="(agreement_version|agreement_sha256|locale)" value="([^"]+)"', form))
    issued = alice.post(
        f"/admin/seals/{seal_id}/certificate", data={**fields, "agree": "y", "csrf_token": csrf_of(page)}
    )
    assert issued.status_code == 303
    page = alice.get(page_path).get_data(as_text=True)
    assert "The seal&#39;s certificate is issued" in page and 'id="seal-certificate"' in page
    assert 'id="revoke-seal-certificate"' in page

    saved = post_form(alice, page_path, f"/admin/seals/{seal_id}/approvers", usernames="dave\n")
    assert saved.status_code == 303
    page = alice.get(page_path).get_data(as_text=True)
    assert ">dave</textarea>" in page
    assert 'id="current-keepers"' in page
    group = "cn=auditors,ou=groups,dc=example,dc=org"
    saved = post_form(alice, page_path, f"/admin/seals/{seal_id}/keepers", usernames="", groups=group)
    assert saved.status_code == 303
    page = alice.get(page_path).get_data(as_text=True)
    assert f'spellcheck="false">{group}</textarea>' in page and 'id="current-keepers"' not in page
    post_form(alice, page_path, f"/admin/seals/{seal_id}/state", state="disabled")
    assert '<dd id="seal-state">Disabled</dd>' in alice.get(page_path).get_data(as_text=True)
    post_form(alice, page_path, f"/admin/seals/{seal_id}/state", state="active")
    assert '<dd id="seal-state">In use</dd>' in alice.get(page_path).get_data(as_text=True)
    assert name in alice.get("/admin/seals").get_data(as_text=True)

    bob = pages.browser("bob")  # Sales: no org admin
    assert 'id="nav-seals"' not in bob.get("/").get_data(as_text=True)
    assert bob.get("/admin/seals").status_code == 403
    assert bob.get(page_path).status_code == 404
    assert bob.get(f"/admin/seals/{seal_id}/image.png").status_code == 404

    chinese = pages.browser("alice", language="zh-CN").get(page_path)
    assert chinese.status_code == 200
    assert name in chinese.get_data(as_text=True) and "用印审批人" in chinese.get_data(as_text=True)


def test_an_auditor_reads_the_seals_usage_log_on_a_page(pages: PagesEnv) -> None:
    seal_id = pages.new_seal()
    contract = pages.contract([(f"seal:{seal_id}", 1)], title="Warehouse lease")
    party = f"/api/v1/contracts/{contract['id']}/parties/{contract['parties'][0]['id']}"
    client, alice = pages.api.client(), pages.api.auth("alice")
    assert client.post(f"{party}/code", headers=alice).status_code == 200
    signed = client.post(f"{party}/sign", json={"code": pages.last_code("alice")}, headers=alice)
    assert signed.get_json()["state"] == "completed", signed.get_data(as_text=True)

    dave = pages.browser("dave")  # an auditor of Finance, no org admin
    home = dave.get("/").get_data(as_text=True)
    assert 'id="nav-seal-usage"' in home and 'id="nav-seals"' not in home
    listing = dave.get("/audit/seals").get_data(as_text=True)
    row = listing.split(f'data-seal="{seal_id}"', 1)[1].split("</tr>", 1)[0]
    assert f"/audit/seals/{seal_id}" in row and '"Uses">1</td>' in row
    page = dave.get(f"/audit/seals/{seal_id}").get_data(as_text=True)
    usage = page.split('id="seal-usage"', 1)[1].split("</table>", 1)[0]
    assert f'Warehouse lease <span class="hint">(#{contract["id"]})</span>' in usage
    assert "Alice" in usage  # who applied it
    chinese = pages.browser("dave", language="zh-CN").get(f"/audit/seals/{seal_id}")
    assert "用印记录" in chinese.get_data(as_text=True)

    alice_home = pages.browser("alice").get("/").get_data(as_text=True)
    assert 'id="nav-seals"' in alice_home and 'id="nav-seal-usage"' not in alice_home
    bob = pages.browser("bob")  # Sales: neither admin nor auditor of Finance
    assert 'id="nav-seal-usage"' not in bob.get("/").get_data(as_text=True)
    assert bob.get("/audit/seals").status_code == 403
    assert bob.get(f"/audit/seals/{seal_id}").status_code == 404
