"""Real threads against the real database, for the concurrency tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection
from rest_framework.test import APIClient

from tests.contract import ContractClient


def in_parallel(n: int, work: Callable[[int, APIClient], Any], raw_key: str) -> list[Any]:
    """work(i, client) in n threads that start together, each with its own
    HTTP client and database connection, closed at the end."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        try:
            client = ContractClient()  # each answer checked against the OpenAPI document
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
            barrier.wait(timeout=30)
            return work(i, client)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))
