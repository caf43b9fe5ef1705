"""An API fuzzer over the platform's own OpenAPI document: no input gets a 5xx, every status is documented.

Schemathesis generates valid and invalid requests for every operation (NUL characters, huge integers, wrong
types, missing fields...) against the running test platform. It authenticates as the operator of a tenant of its
own, so what it creates stays in that tenant; platform routes answer it 403, and a second pass with the platform
operator's key covers their validation. Routes that revoke keys, flip kill switches, rotate secrets, prune the
audit log or change the global price list are left out: they would disturb the rest of the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from conftest import Platform, make_tenant

# (method, path) the fuzzer must not call: destructive to shared state, or not about input handling.
EXCLUDED = {
    ("DELETE", "/v1/keys/{key_id}"),  # revokes keys other tests hold
    ("POST", "/v1/kill"),  # kill switches stop the shared fleet
    ("DELETE", "/v1/kill/{scope}"),
    ("POST", "/v1/secrets/rotate"),  # re-wraps every tenant's data keys
    ("POST", "/v1/audit/prune"),
    ("POST", "/v1/prices"),  # the price list is global: other tests' costs would change
    ("POST", "/v1/security/scan"),  # minutes of scanning, not input handling
    ("GET", "/v1/tickets/{ticket_id}/events"),  # an event stream stays open until its ticket ends
}
MAX_EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


@pytest.fixture
def fuzz_keys(platform: Platform) -> Iterator[dict[str, str]]:
    """Per test: the autouse clean-up removes every tenant but the system one before each test."""
    tenant = make_tenant(platform, "fuzz", role="operator")
    yield {"tenant": tenant.key, "platform": platform.admin_key}
    tenant.http.close()


def _schema(platform: Platform, key: str, **filters: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    schema = schemathesis.openapi.from_url(f"{platform.url}/openapi.json", headers=headers, timeout=30)
    schema.config.update(base_url=platform.url, headers=headers, request_timeout=40)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, with_security_parameters=False)
    for method, path in EXCLUDED:
        schema = schema.exclude(method=method, path=path)
    return schema.include(**filters) if filters else schema


def _fuzz(schema: Any) -> tuple[int, list[str]]:
    """Every operation, valid and invalid inputs: how many operations, and the failures (all, not just the first)."""
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            def run(case: Any) -> None:
                case.call_and_validate(checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                continue  # nothing to make invalid (no parameters, or only free-form strings)
            except (Exception, BaseExceptionGroup) as e:  # a check failed: go on, to report every operation
                failures.append(f"{operation.label} ({mode.value}): {str(e).strip()[:1500]}")
    return len(operations), failures


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")  # inside schemathesis
def test_no_input_gets_a_server_error_or_an_undocumented_status(platform: Platform,
                                                                 fuzz_keys: dict[str, str]) -> None:
    operations, failures = _fuzz(_schema(platform, fuzz_keys["tenant"]))
    assert operations >= 70 and not failures, "\n\n".join(failures)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_platform_routes_as_the_platform_operator(platform: Platform, fuzz_keys: dict[str, str]) -> None:
    platform_routes = r"^/v1/(security|audit|tenants|keys|connectors)"
    operations, failures = _fuzz(_schema(platform, fuzz_keys["platform"], path_regex=platform_routes))
    assert operations >= 15 and not failures, "\n\n".join(failures)
