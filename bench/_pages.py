"""The page path of bench/flow.py: the to-do list and a contract page against the API for the same data.

A site of its own (bench/_flow_setup.py) whose people come from a real slapd on 127.0.0.1 (the
test fixture's, with bench people added), so they sign in through the login page as staff do:

  to-do list: one person with `todo` contracts waiting for their signature (a small PDF each,
       made through the API by the initiator: create, add the party, send; not timed).
       Page: GET / with that person's session cookie: the first 20 waiting for them, with the
       count, then the first 20 of their contracts. API: the two calls that give the same,
       GET /api/v1/contracts?role=to_sign&limit=20 then GET /api/v1/contracts?limit=20, with
       their token.
  contract page: one contract with 20 people as parties, seen by its initiator. Page: GET
       /contracts/ID. API: GET /api/v1/contracts/ID then GET .../evidence, the two calls that
       give what the page shows (parties and the timeline).

Each is timed both ways in turns, so that both see the same machine load: time to first byte
(response headers read) and full response (last byte). The page is also loaded in Debian's
Chromium (Playwright), where "render" is the navigation's loadEventEnd (HTML, CSS, scripts and
images, the rendered page previews included); the API has no render.
"""

from __future__ import annotations

import re
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench._flow_setup import Site, make_pdf, running_site
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS
from tests.fixtures.ldap import OPENLDAP_ROLE_GROUPS, OPENLDAP_SUFFIX, openldap_section, start_slapd

BASE_DN = f"ou=pagebench,ou=people,{OPENLDAP_SUFFIX}"
INITIATORS_GROUP = f"cn=pagebench-initiators,ou=groups,{OPENLDAP_SUFFIX}"
EMPLOYEES_GROUP = f"cn=pagebench-staff,ou=groups,{OPENLDAP_SUFFIX}"
READER = "pb-reader"
INITIATOR = "pb-initiator"
PARTIES = 20
PASSWORD = "Bench-Pages-1"
MAKERS = 4
"""Threads making the to-do contracts through the API."""
TARGET_PAGE_RATIO = 1.5
TARGET_TODO_P95_MS = 150.0


def write_people(path: Path) -> None:
    """The bench's people and the two groups that give them their roles."""
    people = [READER, INITIATOR, *(f"pb-party{i:02d}" for i in range(PARTIES))]
    lines = [f"dn: {BASE_DN}", "objectClass: organizationalUnit", "ou: pagebench", ""]
    for index, uid in enumerate(people):
        lines += [
            f"dn: uid={uid},{BASE_DN}",
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            f"cn: 页面测试 {index:02d}",
            f"sn: {index:02d}",
            f"mail: {uid}@example.org",
            "departmentNumber: bench",
            f"userPassword: {PASSWORD}",
            "",
        ]
    for group, members in ((EMPLOYEES_GROUP, people), (INITIATORS_GROUP, [INITIATOR])):
        lines += [f"dn: {group}", "objectClass: groupOfNames", f"cn: {group.split(',')[0][3:]}"]
        lines += [f"member: uid={uid},{BASE_DN}" for uid in members]
        lines.append("")
    path.write_text("\n".join(lines))


class Browser:
    """A signed-in requests session (cookie) and an API token for one person."""

    def __init__(self, site: Site, username: str) -> None:
        self.site = site
        self.web = requests.Session()
        form = self.web.get(f"{site.url}/login", timeout=30)
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)
        if csrf is None:
            raise RuntimeError("the login page has no CSRF token")
        signed_in = self.web.post(
            f"{site.url}/login",
            data={"username": username, "password": PASSWORD, "csrf_token": csrf.group(1)},
            allow_redirects=False,
            timeout=30,
        )
        if signed_in.status_code != 303:
            raise RuntimeError(f"{username} could not sign in: {signed_in.status_code}")
        self._accept_privacy_notice()
        issued = requests.post(
            f"{site.url}/api/v1/auth/tokens",
            json={"username": username, "password": PASSWORD, "name": "bench pages"},
            timeout=30,
        )
        if issued.status_code != 201:
            raise RuntimeError(f"{username} got no API token: {issued.status_code} {issued.text}")
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {issued.json()['token']}"


@dataclass
class Timings:
    first_byte: list[float]
    full: list[float]

    def _accept_privacy_notice(self) -> None:
        """Accept the privacy notice at the first sign-in, as people do before any page."""
        page = self.web.get(f"{self.site.url}/privacy", timeout=30).text
        if 'id="privacy-form"' not in page:
            return
        form = page.split('id="privacy-form"', 1)[1].split("</form>", 1)[0]
        fields = dict(re.findall(r'name="(version|sha256|locale|csrf_token)"[^>]*value="([^"]+)"', form))
        accepted = self.web.post(
            f"{self.site.url}/privacy/accept",
            data={**fields, "agree": "y"},
            allow_redirects=False,
            timeout=30,
        )
        if accepted.status_code != 303:
            raise RuntimeError(f"the privacy notice was not accepted: {accepted.status_code}")


def timed_get(session: requests.Session, urls: list[str]) -> tuple[float, float]:
    """(seconds to the first response's headers, seconds to the last byte of the last one)."""
    started = time.perf_counter()
    first_byte = 0.0
    for index, url in enumerate(urls):
        response = session.get(url, stream=True, timeout=60)
        if index == 0:
            first_byte = time.perf_counter() - started
        body = response.content
        if response.status_code != 200 or not body:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
    return first_byte, time.perf_counter() - started


def measure(site: Site, todo: int, samples: int) -> dict[str, Any]:
    reader, initiator = Browser(site, READER), Browser(site, INITIATOR)
    parties = [f"pb-party{i:02d}" for i in range(PARTIES)]
    pdf = make_pdf(20_000)
    started = time.perf_counter()
    # both gunicorn workers busy: the uploads are normalised in a subprocess each, the slow part
    with ThreadPoolExecutor(MAKERS) as makers:
        made = makers.map(
            lambda n: contract_with(initiator.api, site.url, pdf, [READER], f"待办合同 To-do {n}"),
            range(todo),
        )
        assert len(list(made)) == todo
    big = contract_with(initiator.api, site.url, pdf, parties, "二十方合同 Twenty parties")
    print(
        f"pages: {todo} contracts to do and one with {PARTIES} parties made in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    url = site.url
    cases = {
        "to-do list": (
            reader,
            f"{url}/",
            [f"{url}/api/v1/contracts?role=to_sign&limit=20", f"{url}/api/v1/contracts?limit=20"],
        ),
        f"contract page, {PARTIES} parties": (
            initiator,
            f"{url}/contracts/{big}",
            [f"{url}/api/v1/contracts/{big}", f"{url}/api/v1/contracts/{big}/evidence"],
        ),
    }
    results: dict[str, Any] = {}
    for name, (person, page_url, api_urls) in cases.items():
        for _ in range(3):  # warm-up: templates, caches, both workers
            timed_get(person.web, [page_url])
            timed_get(person.api, api_urls)
        page, api = Timings([], []), Timings([], [])
        for _ in range(samples):
            for timings, session, urls in ((page, person.web, [page_url]), (api, person.api, api_urls)):
                first_byte, full = timed_get(session, urls)
                timings.first_byte.append(first_byte)
                timings.full.append(full)
        rendered = browser_render(site, person.web, page_url, samples)
        results[name] = report(name, page, api, rendered)
    return results


def contract_with(api: requests.Session, url: str, pdf: bytes, usernames: list[str], title: str) -> int:
    """A contract out for signing to `usernames`, made through the API as an integration would."""
    created = api.post(
        f"{url}/api/v1/contracts",
        data={"title": title, "routing": "parallel", "not_excluded": "true"},
        files={"file": ("bench.pdf", pdf, "application/pdf")},
        timeout=120,
    )
    if created.status_code != 201:
        raise RuntimeError(f"POST /contracts answered {created.status_code}: {created.text}")
    contract_id = int(created.json()["id"])
    for index, username in enumerate(usernames):
        # a grid of small fields on page 1, one per party
        field = {
            "page": 1,
            "x": 40 + (index % 4) * 130,
            "y": 40 + (index // 4) * 60,
            "width": 120,
            "height": 50,
        }
        added = api.post(
            f"{url}/api/v1/contracts/{contract_id}/parties",
            json={"kind": "person", "username": username, "fields": [field]},
            timeout=60,
        )
        if added.status_code != 201:
            raise RuntimeError(f"POST /parties answered {added.status_code}: {added.text}")
    sent = api.post(f"{url}/api/v1/contracts/{contract_id}/send", timeout=60)
    if sent.status_code != 200:
        raise RuntimeError(f"POST /send answered {sent.status_code}: {sent.text}")
    return contract_id


def browser_render(
    site: Site, web: requests.Session, page_url: str, samples: int
) -> list[tuple[float, float]]:
    """(first byte, loadEventEnd) in seconds per load of `page_url` in Chromium, signed in."""
    from playwright.sync_api import sync_playwright

    cookies = [
        {"name": c.name, "value": c.value or "", "url": site.url} for c in web.cookies if c.value is not None
    ]
    loads = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies(cookies)  # type: ignore[arg-type]
            page = context.new_page()
            for index in range(samples + 3):
                page.goto(page_url, wait_until="load")
                timing = page.evaluate(
                    "(() => { const n = performance.getEntriesByType('navigation')[0];"
                    " return [n.responseStart - n.startTime, n.loadEventEnd - n.startTime]; })()"
                )
                if index >= 3:  # the first loads warm the browser's and the server's caches
                    loads.append((timing[0] / 1000, timing[1] / 1000))
        finally:
            browser.close()
    return loads


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def report(name: str, page: Timings, api: Timings, rendered: list[tuple[float, float]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for label, values in (
        ("page_first_byte", page.first_byte),
        ("page_full", page.full),
        ("api_first_byte", api.first_byte),
        ("api_full", api.full),
        ("browser_first_byte", [r[0] for r in rendered]),
        ("browser_render", [r[1] for r in rendered]),
    ):
        p50, p95 = percentiles(values)
        row[f"{label}_p50_ms"], row[f"{label}_p95_ms"] = round(p50, 1), round(p95, 1)
    ratio = row["page_full_p50_ms"] / row["api_full_p50_ms"]
    row["ratio_page_over_api_p50"] = round(ratio, 2)
    row["ratio_page_over_api_p95"] = round(row["page_full_p95_ms"] / row["api_full_p95_ms"], 2)
    print(f"{name}:", flush=True)
    for label, key in (("page", "page"), ("API", "api")):
        print(
            f"    {label:5} first byte p50 {row[f'{key}_first_byte_p50_ms']:.1f} "
            f"p95 {row[f'{key}_first_byte_p95_ms']:.1f} ms  full p50 {row[f'{key}_full_p50_ms']:.1f} "
            f"p95 {row[f'{key}_full_p95_ms']:.1f} ms",
            flush=True,
        )
    print(
        f"    Chromium first byte p50 {row['browser_first_byte_p50_ms']:.1f} ms, rendered (load) p50 "
        f"{row['browser_render_p50_ms']:.1f} p95 {row['browser_render_p95_ms']:.1f} ms",
        flush=True,
    )
    verdict = "OK" if ratio <= TARGET_PAGE_RATIO else "MISSED"
    print(f"    page / API (full, p50) {ratio:.2f} (target <= {TARGET_PAGE_RATIO}) -> {verdict}", flush=True)
    if name == "to-do list":
        p95 = row["page_full_p95_ms"]
        verdict = "OK" if p95 < TARGET_TODO_P95_MS else "MISSED"
        print(
            f"    to-do list p95 {p95:.1f} ms (target < {TARGET_TODO_P95_MS:g} ms) -> {verdict}", flush=True
        )
    return row


def run(base: Path, postgresql: str | None, todo: int, samples: int) -> dict[str, Any]:
    """The page path on a site of its own in `base` (a new folder), with slapd; figures by case."""
    (base / "site").mkdir(parents=True)
    ldif = base / "pagebench.ldif"
    write_people(ldif)
    slapd = start_slapd(base / "ldap", extra_ldif={OPENLDAP_SUFFIX: ldif})
    try:
        roles = {
            **OPENLDAP_ROLE_GROUPS,
            "employee": [EMPLOYEES_GROUP],
            "initiator": [INITIATORS_GROUP],
        }
        directory = openldap_section(slapd, role_groups=roles)
        with running_site(base / "site", 0, postgresql, directory=directory) as site:
            return measure(site, todo, samples)
    finally:
        slapd.stop()
