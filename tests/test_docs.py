"""The documentation in the repository keeps up with the code.

docs/api.md names every operation of the API as `METHOD /api/v1/...` in
backticks, and names no operation that does not exist; the OpenAPI document
the service serves is the reference. Paths the guide mentions without a
method (features not served yet) are not operations and are not counted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
API_GUIDE = ROOT / "docs" / "api.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DOCUMENTED = re.compile(r"`(" + "|".join(METHODS) + r")\s+(/api/v1/[^`\s?#]*)[^`]*`")
PARAMETER = re.compile(r"\{[^{}/]*\}")


def _normalize(path: str) -> str:
    """Path parameters by position only, without a trailing slash."""
    return PARAMETER.sub("{}", path).rstrip("/")


def _schema_operations() -> set[tuple[str, str]]:
    response = Client().get("/api/schema/?format=json", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content[:500]
    schema = json.loads(response.content)
    return {
        (method.upper(), _normalize(path))
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method in item
        if method.upper() in METHODS  # not HEAD, OPTIONS or the item's "parameters"
    }


def _documented_operations() -> set[tuple[str, str]]:
    text = API_GUIDE.read_text(encoding="utf-8")
    return {(method, _normalize(path)) for method, path in DOCUMENTED.findall(text)}


def _listing(operations: set[tuple[str, str]]) -> str:
    ordered = sorted(operations, key=lambda operation: (operation[1], operation[0]))
    return "\n".join(f"  {method} {path}" for method, path in ordered)


def test_api_guide_lists_exactly_the_served_operations(db: Any) -> None:
    served = _schema_operations()
    documented = _documented_operations()
    assert served, "the OpenAPI document has no operation under /api/v1/"
    missing = served - documented
    extra = documented - served
    message = []
    if missing:
        message.append(
            "Served but not documented in docs/api.md (write `METHOD /api/v1/...`):\n"
            + _listing(missing)
        )
    if extra:
        message.append("Documented in docs/api.md but not served:\n" + _listing(extra))
    assert not missing and not extra, "\n".join(message)


def test_parameter_names_do_not_matter_but_positions_do() -> None:
    expected = "/api/v1/members/{}/cards/{}"
    assert _normalize("/api/v1/members/{member_number}/cards/{card}") == expected
    assert _normalize("/api/v1/members/{n}/cards/{c}/") == expected
    found = DOCUMENTED.findall("`GET /api/v1/members/lookup?card=` and `POST /api/v1/events`")
    assert found == [("GET", "/api/v1/members/lookup"), ("POST", "/api/v1/events")]


POINTERS = ("../shared", "shared/API.md")


def _docs_files() -> list[Any]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [pytest.param(path, id=str(path.relative_to(ROOT))) for path in files]


def test_the_docs_exist() -> None:
    for name in ("api.md", "architecture.md", "operations.md"):
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"


@pytest.mark.parametrize("path", _docs_files())
def test_docs_point_to_nothing_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for pointer in POINTERS:
        lines = [n for n, line in enumerate(text.splitlines(), 1) if pointer in line]
        assert not lines, (
            f"{path.relative_to(ROOT)} points outside the repository ({pointer!r}) on lines {lines}"
        )
