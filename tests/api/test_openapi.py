"""The OpenAPI document: valid OpenAPI 3.1, every API route in it, and the server keeping
its promises under schemathesis (no server errors, every answer as documented)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import ApiEnv

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

API_BLUEPRINTS = (
    "api.",
    "contracts_api.",
    "certificates_api.",
    "authenticator_api.",
    "personal_api.",
    "cancellation_api.",
    "approvals_api.",
    "seals_api.",
    "templates_api.",
    "webhooks_api.",
)
EXPECTED = {
    ("get", "/api/v1/"),
    ("get", "/api/v1/authenticator"),
    ("get", "/api/v1/people"),
    ("get", "/api/v1/me/personal-data"),
    ("get", "/api/v1/me/cancellation"),
    ("post", "/api/v1/me/cancellation"),
    ("post", "/api/v1/me/cancellation/confirm"),
    ("post", "/api/v1/authenticator"),
    ("delete", "/api/v1/authenticator"),
    ("post", "/api/v1/authenticator/confirm"),
    ("get", "/api/v1/certificates/agreement"),
    ("get", "/api/v1/certificates/mine"),
    ("post", "/api/v1/certificates/mine"),
    ("post", "/api/v1/certificates/mine/renew"),
    ("post", "/api/v1/certificates/mine/{certificate_id}/revoke"),
    ("get", "/api/v1/contracts"),
    ("post", "/api/v1/contracts"),
    ("get", "/api/v1/contracts/{contract_id}"),
    ("get", "/api/v1/contracts/{contract_id}/documents/{which}"),
    ("get", "/api/v1/contracts/{contract_id}/evidence"),
    ("post", "/api/v1/contracts/{contract_id}/end"),
    ("post", "/api/v1/contracts/{contract_id}/parties"),
    ("delete", "/api/v1/contracts/{contract_id}/parties/{party_id}"),
    ("post", "/api/v1/contracts/{contract_id}/parties/{party_id}/code"),
    ("post", "/api/v1/contracts/{contract_id}/parties/{party_id}/reject"),
    ("post", "/api/v1/contracts/{contract_id}/parties/{party_id}/sign"),
    ("post", "/api/v1/contracts/{contract_id}/send"),
    ("post", "/api/v1/contracts/{contract_id}/void"),
    ("post", "/api/v1/contracts/{contract_id}/withdraw"),
    ("post", "/api/v1/contracts/{contract_id}/remind"),
    ("post", "/api/v1/seals"),
    ("post", "/api/v1/seals/{seal_id}/certificate"),
    ("post", "/api/v1/seals/{seal_id}/certificate/renew"),
    ("post", "/api/v1/seals/{seal_id}/certificate/revoke"),
    ("put", "/api/v1/seals/{seal_id}/approvers"),
    ("get", "/api/v1/seals/{seal_id}/usage"),
    ("get", "/api/v1/seals"),
    ("get", "/api/v1/seals/{seal_id}"),
    ("put", "/api/v1/seals/{seal_id}/state"),
    ("get", "/api/v1/approvals"),
    ("post", "/api/v1/contracts/{contract_id}/approvals/{approval_id}/approve"),
    ("post", "/api/v1/contracts/{contract_id}/approvals/{approval_id}/reject"),
    ("put", "/api/v1/seals/{seal_id}/automation"),
    ("put", "/api/v1/seals/{seal_id}/keepers"),
    ("get", "/api/v1/templates"),
    ("get", "/api/v1/templates/{template_id}"),
    ("post", "/api/v1/contracts/{contract_id}/template"),
    ("post", "/api/v1/templates/{template_id}/contracts"),
    ("post", "/api/v1/templates/{template_id}/retire"),
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks/{endpoint_id}"),
    ("post", "/api/v1/webhooks/{endpoint_id}/disable"),
    ("get", "/api/v1/webhooks/{endpoint_id}/deliveries"),
    ("post", "/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver"),
}
EXAMPLES = 12
"""Per operation and generation mode: enough to reach each refusal, little enough for ~60 s."""
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,
]
"""positive_data_acceptance is left out: a well-formed cursor can still name no page (400)."""


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in document["paths"].items() for method in item}


def test_the_document_is_openapi_3_1_and_lists_every_endpoint(api_env: ApiEnv) -> None:
    response = api_env.client().get("/api/v1/openapi.json")  # no token: the document is public
    assert response.status_code == 200
    document = response.get_json()

    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 meta-schema
    assert document["openapi"] == "3.1.0"
    assert operations(document) == EXPECTED
    # and nothing routed under the API blueprints is left out (a view without spec.validate)
    routed = {
        (method.lower(), rule.rule.replace("<", "{").replace(">", "}"))
        for rule in api_env.app.url_map.iter_rules()
        if rule.endpoint.startswith(API_BLUEPRINTS) and rule.endpoint != "api.openapi"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert {(m, _plain_path(p)) for m, p in routed} == {(m, _plain_path(p)) for m, p in EXPECTED}

    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "opaque API token",
        "description": "An API token of the person the request acts for.",
    }
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/api/v1/"]["get"]["security"] == []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path != "/api/v1/":
                assert "security" not in operation, (method, path)  # the document-wide bearer
                assert "401" in operation["responses"], (method, path)
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    assert answer["content"] == {
                        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, (method, path, status)
    download = document["paths"]["/api/v1/contracts/{contract_id}/documents/{which}"]["get"]
    assert list(download["responses"]["200"]["content"]) == ["application/pdf"]
    which = next(p for p in download["parameters"] if p["name"] == "which")
    assert which["schema"]["enum"] == ["original", "current", "completion"]
    create = document["paths"]["/api/v1/contracts"]["post"]["requestBody"]["content"]
    assert list(create) == ["multipart/form-data"]
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "code", "title", "status", "detail"}


def _plain_path(path: str) -> str:
    """A Flask rule and an OpenAPI path compared without converters: {int(...):id} is {id}."""
    parts = []
    for part in path.split("/"):
        if part.startswith("{") and ":" in part:
            part = "{" + part.rsplit(":", 1)[1]
        parts.append(part)
    return "/".join(parts)


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(api_env: ApiEnv) -> None:
    """Generated requests, valid and invalid, to every operation: with ids that name nothing,
    and with the ids of a real draft of the caller's (so the workflow itself is reached)."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", from_intranet(api_env.app))
    draft = api_env.draft("bob", "alice")
    real_ids = {"contract_id": draft["id"], "party_id": draft["parties"][0]["id"]}
    headers = api_env.auth("bob")
    failures: list[str] = []

    for result in schema.get_all_operations():
        operation = result.ok()
        ids = {k: v for k, v in real_ids.items() if k in operation.path}
        runs: list[tuple[GenerationMode, dict[str, int] | None]] = [
            (GenerationMode.POSITIVE, None),
            (GenerationMode.NEGATIVE, None),
        ]
        if ids:
            runs.append((GenerationMode.POSITIVE, ids))
        for mode, path_parameters in runs:
            strategy = operation.as_strategy(mode, path_parameters=path_parameters, headers=headers)
            try:
                _run(strategy, lambda case: case.call_and_validate(checks=CHECKS))
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation that takes nothing: none is invalid
            # collected, so one operation's failure does not hide the next (schemathesis reports
            # its findings as a BaseExceptionGroup)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}, ids={path_parameters}): {exc}")

    assert not failures, "\n\n".join(failures)


def from_intranet(app: WSGIApplication) -> WSGIApplication:
    """The app as a client on 127.0.0.1 reaches it: schemathesis's WSGI client sets no address,
    and the appliance answers only its allowed networks."""

    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ.setdefault("REMOTE_ADDR", "127.0.0.1")
        return app(environ, start_response)

    return wsgi


def _run(strategy: Any, test: Callable[[Case], object]) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Case) -> None:
        test(case)

    check()
