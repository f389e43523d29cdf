"""The appliance's REST API, as an app uses it: sign in, to-do list, contract, code, sign, download."""

from __future__ import annotations

import uuid
from typing import Any

import requests

from esign_client.discovery import Discovery


class ClientError(Exception):
    """The appliance refused; `status` and `problem` (its problem+json) say why."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status}: {problem.get('detail') or problem}")
        self.status = status
        self.problem = problem


class Client:
    def __init__(self, discovery: Discovery, token: str, *, timeout: float = 60) -> None:
        self.discovery = discovery
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout

    @classmethod
    def login(
        cls, discovery: Discovery, username: str, password: str, *, device: str = "esign-client"
    ) -> Client:
        """An API token for `username`, named after this device (revocable on the appliance)."""
        answer = requests.post(
            discovery.token_endpoint,
            json={"username": username, "password": password, "name": device},
            timeout=30,
        )
        if answer.status_code != 201:
            raise ClientError(answer.status_code, _problem(answer))
        return cls(discovery, answer.json()["token"])

    def todo(self) -> list[dict[str, Any]]:
        """Contracts waiting for your signature or seal, as the appliance orders them."""
        return list(self._call("GET", "/contracts", params={"role": "to_sign", "limit": 100})["items"])

    def contract(self, contract_id: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/contracts/{contract_id}"))

    def request_code(self, contract_id: int, party_id: int) -> dict[str, Any]:
        """Have a verification code sent (by e-mail, or read it from your authenticator app)."""
        return dict(self._call("POST", f"/contracts/{contract_id}/parties/{party_id}/code"))

    def sign(self, contract_id: int, party_id: int, code: str) -> dict[str, Any]:
        """Sign (or seal) for the party with the code; safe to retry: the same request signs once."""
        return dict(
            self._call(
                "POST",
                f"/contracts/{contract_id}/parties/{party_id}/sign",
                json={"code": code},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
        )

    def download(self, contract_id: int, which: str = "current") -> bytes:
        """The contract's PDF: `current` (signed), `original` or `completion` (the certificate)."""
        answer = self._http.get(
            f"{self.discovery.api_base}/contracts/{contract_id}/documents/{which}", timeout=self._timeout
        )
        if answer.status_code != 200:
            raise ClientError(answer.status_code, _problem(answer))
        return answer.content

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self._http.request(method, self.discovery.api_base + path, timeout=self._timeout, **kwargs)
        if answer.status_code >= 300:
            raise ClientError(answer.status_code, _problem(answer))
        return answer.json()


def _problem(answer: requests.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {"detail": answer.text[:500]}
    return body if isinstance(body, dict) else {"detail": str(body)}
