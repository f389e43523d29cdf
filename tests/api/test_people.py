"""Finding the people to add as parties, in the real directory (slapd)."""

from __future__ import annotations

from tests.api.conftest import ApiEnv, assert_problem


def test_people_are_found_in_the_directory_without_their_contact_details(api_env: ApiEnv) -> None:
    response = api_env.client().get("/api/v1/people", query_string={"q": "alic"}, headers=api_env.auth("bob"))
    assert response.status_code == 200, response.get_data(as_text=True)
    items = response.get_json()["items"]
    assert [p["username"] for p in items] == ["alice"]
    assert set(items[0]) == {"username", "display_name", "department", "organisation"}  # no e-mail, no phone


def test_a_search_too_short_or_missing_is_refused(api_env: ApiEnv) -> None:
    for query in ({"q": "a"}, {}, {"q": "al", "limit": "0"}):
        response = api_env.client().get("/api/v1/people", query_string=query, headers=api_env.auth("bob"))
        assert_problem(response, 400)
