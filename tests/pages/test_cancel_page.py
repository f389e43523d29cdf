"""The Cancel my account page: the reasons it is refused, the mailed code, signing out for
good; then the pages others read (the contract with its evidence, the operation log and its
CSV export) show the pseudonym and none of the person's name, login name or e-mail address."""

from __future__ import annotations

from sqlalchemy import select

from appliance.models import User
from appliance.workflow.cancellation import pseudonym
from tests.api.conftest import DirectoryPerson, password_of
from tests.pages.conftest import PagesEnv, csrf_of, post_form


def test_a_person_cancels_their_account_from_the_page(
    pages: PagesEnv, directory_person: DirectoryPerson
) -> None:
    uid, name = directory_person("quitter")
    browser = pages.browser(uid)
    with pages.api.services.sessions() as session:
        user_id = session.scalars(select(User.id).where(User.username == uid)).one()
    contract = pages.contract([(uid, 1)], title="Consulting agreement")

    page = browser.get("/me/cancel").get_data(as_text=True)
    assert 'id="cancel-blockers"' in page and "Consulting agreement" in page
    assert 'id="start-cancel"' not in page
    assert 'href="/me/cancel"' in browser.get("/me").get_data(as_text=True)
    withdrawn = pages.api.client().post(
        f"/api/v1/contracts/{contract['id']}/withdraw",
        json={"reason": "not needed"},
        headers=pages.api.auth("bob"),
    )
    assert withdrawn.status_code == 200, withdrawn.get_data(as_text=True)

    page = browser.get("/me/cancel").get_data(as_text=True)
    assert 'id="cancel-blockers"' not in page and 'id="confirm-cancel-form"' not in page
    started = post_form(browser, "/me/cancel", "/me/cancel")
    assert started.status_code == 303
    page = browser.get("/me/cancel").get_data(as_text=True)
    assert "A code was sent to" in page and f"{uid}@example.org" not in page
    assert 'id="confirm-cancel-form"' in page
    code = pages.api.codes_mailed_to(f"{uid}@example.org")[-1]
    done = browser.post("/me/cancel/confirm", data={"code": code, "csrf_token": csrf_of(page)})
    assert done.status_code == 303 and done.headers["Location"].endswith("/login")
    assert "Your account is cancelled" in browser.get("/login").get_data(as_text=True)
    assert browser.get("/me").status_code in (302, 303)  # signed out

    again = pages.api.client()
    login = again.get("/login").get_data(as_text=True)
    refused = again.post(
        "/login", data={"username": uid, "password": password_of(uid), "csrf_token": csrf_of(login)}
    )
    assert refused.status_code == 401

    bob, dave = pages.browser("bob"), pages.browser("dave")
    shown = [
        bob.get(f"/contracts/{contract['id']}"),
        dave.get("/audit/log"),
        dave.get("/audit/log.csv"),
    ]
    for response in shown:
        assert response.status_code == 200, response.request.path
        text = response.get_data(as_text=True)
        for value in (name, uid, f"{uid}@example.org"):
            assert value not in text, (response.request.path, value)
    # searched by the login name it was written with, the log finds nothing of the person
    searched = dave.get("/audit/log", query_string={"actor": uid}).get_data(as_text=True)
    assert 'id="log-empty"' in searched
    assert pseudonym(user_id) in shown[0].get_data(as_text=True)


def test_the_cancel_page_in_chinese(pages: PagesEnv) -> None:
    page = pages.browser("dave", language="zh-CN").get("/me/cancel").get_data(as_text=True)
    assert "注销我的账户" in page and "无法恢复" in page
