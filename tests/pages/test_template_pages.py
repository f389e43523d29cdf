"""The template pages: bob saves his draft as a template from its Prepare page, starts contracts
from it (a draft, or sent at once), and retires it; another organisation's people get 404; an
org admin authorises a template of the organisation for a seal on the seal's page."""

from __future__ import annotations

import re

from tests.api.conftest import FIELD
from tests.pages.conftest import PagesEnv, csrf_of, post_form


def _save(pages: PagesEnv, name: str) -> str:
    """bob's draft with alice, saved as a template; the template page's path."""
    draft = pages.contract([("alice", 1)], send=False)
    bob = pages.browser("bob")
    edit = f"/contracts/{draft['id']}/edit"
    assert 'id="save-template"' in bob.get(edit).get_data(as_text=True)
    party = draft["parties"][0]["id"]
    saved = post_form(
        bob, edit, f"/contracts/{draft['id']}/template", name=name, **{f"label-{party}": "Supplier"}
    )
    assert saved.status_code == 303, saved.get_data(as_text=True)
    assert re.fullmatch(r"/templates/\d+", saved.headers["Location"])
    return str(saved.headers["Location"])


def test_bob_saves_a_template_and_starts_contracts_from_it(pages: PagesEnv) -> None:
    path = _save(pages, "Supply framework")
    bob = pages.browser("bob")
    assert "Supply framework" in bob.get("/templates").get_data(as_text=True)
    page = bob.get(path).get_data(as_text=True)
    assert "Supplier" in page and 'id="start"' in page
    role = re.search(r'name="(role-\d+)"', page).group(1)  # type: ignore[union-attr]

    refused = post_form(bob, path, f"{path}/contracts", title="No supplier", not_excluded="y", **{role: ""})
    assert refused.status_code == 400 and 'id="start-error"' in refused.get_data(as_text=True)
    unknown = post_form(
        bob, path, f"{path}/contracts", title="Ghost", not_excluded="y", **{role: "nobody-at-all"}
    )
    assert unknown.status_code == 404 and "nobody-at-all" in unknown.get_data(as_text=True)

    draft = post_form(
        bob, path, f"{path}/contracts", title="Supply 2027", not_excluded="y", **{role: "alice"}
    )
    assert draft.status_code == 303 and draft.headers["Location"].endswith("/edit")
    sent = post_form(
        bob, path, f"{path}/contracts", title="Supply 2028", not_excluded="y", send="y", **{role: "alice"}
    )
    assert sent.status_code == 303, sent.get_data(as_text=True)
    contract_id = int(re.search(r"/contracts/(\d+)$", sent.headers["Location"]).group(1))  # type: ignore[union-attr]
    pages.made.append(contract_id)
    contract = (
        pages.api.client().get(f"/api/v1/contracts/{contract_id}", headers=pages.api.auth("bob")).get_json()
    )
    assert contract["state"] == "signing" and contract["parties"][0]["fields"][0]["x"] == FIELD["x"]

    alice = pages.browser("alice")  # Finance: not her organisation's template
    assert alice.get(path).status_code == 404
    assert "Supply framework" not in alice.get("/templates").get_data(as_text=True)
    assert post_form(alice, "/templates", f"{path}/retire").status_code == 404

    retired = post_form(bob, path, f"{path}/retire")
    assert retired.status_code == 303
    page = bob.get(path).get_data(as_text=True)
    assert 'id="template-retired"' in page and 'id="start"' not in page
    assert "Supply framework" not in bob.get("/templates").get_data(as_text=True)
    chinese = pages.browser("bob", language="zh-CN").get("/templates").get_data(as_text=True)
    assert "模板" in chinese


def test_an_org_admin_authorises_a_template_for_a_seal(pages: PagesEnv) -> None:
    seal_id = pages.new_seal()
    api, dave = pages.api, pages.api.auth("dave")
    created = api.create_contract("dave")
    contract_id = created.get_json()["id"]
    seal = {"kind": "seal", "seal_id": seal_id, "fields": [FIELD]}
    assert (
        api.client().post(f"/api/v1/contracts/{contract_id}/parties", json=seal, headers=dave).status_code
        == 201
    )
    template = api.client().post(
        f"/api/v1/contracts/{contract_id}/template", json={"name": "Finance standard"}, headers=dave
    )
    assert template.status_code == 201, template.get_data(as_text=True)
    template_id = template.get_json()["id"]

    alice = pages.browser("alice")
    seal_page = f"/admin/seals/{seal_id}"
    page = alice.get(seal_page).get_data(as_text=True)
    assert (
        f'id="template-{template_id}"' in page
        and "checked" not in page.split(f'id="template-{template_id}"')[1][:80]
    )
    saved = post_form(alice, seal_page, f"{seal_page}/automation", initiators="", template=str(template_id))
    assert saved.status_code == 303
    page = alice.get(seal_page).get_data(as_text=True)
    assert "the appliance applies the seal itself" in page
    assert f'id="template-{template_id}" name="template" value="{template_id}" checked' in page
    token = csrf_of(page)
    refused = alice.post(f"{seal_page}/automation", data={"initiators": "bob", "csrf_token": token})
    assert refused.status_code == 303
    assert "not in the seal" in alice.get(seal_page).get_data(as_text=True)  # bob is Sales
