"""The connector runtime against a real local HTTP server imitating a store API (loopback only, no mocks)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from external.fake_shop import FakeShop, echoed_encodings, product
from oshal.connectors._ssrf import blocked_reason, guarded_transport
from oshal.connectors.manifest import AuthScheme, ConnectorManifest, Operation, Parameter
from oshal.connectors.runtime import CallResult, ConnectorRuntime, Credential
from oshal.errors import Forbidden, Invalid, NotFound, Unavailable

API_KEY = AuthScheme(kind="api_key", name="X-Auth-Token")
ORDER_SCHEMA = {
    "type": "object", "required": ["customer_id", "lines"], "additionalProperties": False,
    "properties": {
        "customer_id": {"type": "integer"},
        "lines": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["product_id", "quantity"],
            "properties": {"product_id": {"type": "integer"}, "quantity": {"type": "integer", "minimum": 1}}}},
        "note": {"type": "string", "maxLength": 50},
    },
}


def q(name: str, schema: dict[str, Any] | None = None, *, location: str = "query", required: bool = False) -> Parameter:
    return Parameter.model_validate({"name": name, "location": location, "required": required,
                                     "schema": schema or {"type": "string"}})


OPERATIONS = (
    Operation(name="listProducts", method="GET", path="/catalog/products", enabled=True,
              parameters=(q("limit", {"type": "integer", "minimum": 1, "maximum": 250}),
                          q("page", {"type": "integer"}))),
    Operation(name="getProduct", method="GET", path="/catalog/products/{id}", enabled=True,
              parameters=(q("id", {"type": ["integer", "string"], "maxLength": 50}, location="path", required=True),
                          q("include_fields", {"type": "string", "maxLength": 50}),
                          q("X-Correlation-Id", location="header"))),
    Operation(name="createOrder", method="POST", path="/orders", effects=("order",), enabled=True,
              body_schema=ORDER_SCHEMA, body_required=True),
    Operation(name="deleteCart", method="DELETE", path="/carts/{cart_id}", enabled=True),
    Operation(name="slow", method="GET", path="/slow", enabled=True, parameters=(q("seconds"),)),
    Operation(name="big", method="GET", path="/big", enabled=True, parameters=(q("bytes"),)),
    Operation(name="redirect", method="GET", path="/redirect", enabled=True, parameters=(q("to"), q("status"))),
    Operation(name="getAccount", method="GET", path="/account", enabled=True),
    Operation(name="archiveProducts", method="POST", path="/catalog/archive", enabled=False),
)


def manifest(base_url: str, *, auth: tuple[AuthScheme, ...] = (API_KEY,), allow_private: bool = True,
             operations: tuple[Operation, ...] = OPERATIONS, connector_id: str = "shop") -> ConnectorManifest:
    return ConnectorManifest(id=connector_id, version="1", publisher="acme", category="commerce", base_url=base_url,
                             auth=auth, operations=operations, allow_private_network=allow_private)


@pytest.fixture
def shop() -> Iterator[FakeShop]:
    with FakeShop() as server:
        yield server


@pytest.fixture
async def runtime() -> AsyncIterator[ConnectorRuntime]:
    async with ConnectorRuntime(backoff_s=0.01, timeout_s=5) as rt:
        yield rt


def api_key(shop: FakeShop) -> Credential:
    return Credential(kind="api_key", secret=shop.api_key)


def oauth_manifest(shop: FakeShop, kind: str = "oauth2_client_credentials") -> ConnectorManifest:
    scheme = AuthScheme.model_validate({"kind": kind, "token_url": f"{shop.root}/oauth/token",
                                        "scopes": ["store_v2_products", "store_v2_orders"]})
    return manifest(f"{shop.root}/v3", auth=(scheme,))


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- each auth kind, and exactly what the API received ----------------------------------------------------------------
async def test_api_key_header_sends_exactly_the_declared_request(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    result = await runtime.call(manifest(f"{shop.root}/v3"), "getProduct",
                                {"id": 3, "include_fields": "name,price", "X-Correlation-Id": "corr-9"}, api_key(shop))

    assert result.status == 200
    assert result.data == {"data": product(3)}
    assert result.headers == {"content-type": "application/json", "etag": '"p3"', "x-request-id": "req-1"}
    assert (result.pages, result.truncated, result.ok) == (1, False, True)
    [sent] = shop.requests
    assert (sent.method, sent.target) == ("GET", "/v3/catalog/products/3?include_fields=name%2Cprice")
    assert sent.query == {"include_fields": ["name,price"]}
    assert sent.headers["x-auth-token"] == shop.api_key
    assert sent.headers["x-correlation-id"] == "corr-9"
    assert sent.headers["accept"] == "application/json"
    assert "authorization" not in sent.headers and "cookie" not in sent.headers
    assert sent.body is None


async def test_api_key_in_query(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    scheme = AuthScheme(kind="api_key", name="api_key", location="query")
    result = await runtime.call(manifest(f"{shop.root}/v3", auth=(scheme,)), "getProduct",
                                {"path": {"id": "2"}, "query": {"include_fields": "sku"}}, api_key(shop))

    assert (result.status, result.data) == (200, {"data": product(2)})
    [sent] = shop.requests
    assert sent.path == "/v3/catalog/products/2"
    assert sent.query == {"include_fields": ["sku"], "api_key": [shop.api_key]}
    assert "x-auth-token" not in sent.headers and "authorization" not in sent.headers


async def test_bearer_post_sends_the_json_body(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    order = {"customer_id": 7, "lines": [{"product_id": 1, "quantity": 2}], "note": "gift wrap"}
    result = await runtime.call(manifest(f"{shop.root}/v3", auth=(AuthScheme(kind="bearer"),)), "createOrder",
                                {"body": order}, Credential(kind="bearer", secret=shop.bearer_token))

    assert result.status == 201
    assert result.data == {"data": {"id": 101, "status": "pending", **order}}
    [sent] = shop.requests
    assert (sent.method, sent.target, sent.body) == ("POST", "/v3/orders", order)
    assert sent.headers["authorization"] == f"Bearer {shop.bearer_token}"
    assert sent.headers["content-type"] == "application/json"


async def test_basic_delete_with_empty_answer(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    user, password = shop.basic
    result = await runtime.call(manifest(f"{shop.root}/v3", auth=(AuthScheme(kind="basic"),)), "deleteCart",
                                {"cart_id": "c-42"}, Credential(kind="basic", secret=f"{user}:{password}"))

    assert (result.status, result.data, result.pages) == (204, None, 1)
    [sent] = shop.requests
    assert (sent.method, sent.target, sent.body) == ("DELETE", "/v3/carts/c-42", None)
    assert sent.headers["authorization"] == basic_header(user, password)


async def test_oauth2_client_credentials_token_is_cached_across_calls(shop: FakeShop,
                                                                      runtime: ConnectorRuntime) -> None:
    credential = Credential(kind="oauth2_client_credentials", secret=shop.client_secret, client_id=shop.client_id)
    first = await runtime.call(oauth_manifest(shop), "getProduct", {"id": 1}, credential)
    second = await runtime.call(oauth_manifest(shop), "getProduct", {"id": 2}, credential)

    assert (first.status, first.data, second.status, second.data) == (200, {"data": product(1)}, 200,
                                                                      {"data": product(2)})
    [token_request] = shop.token_requests
    assert token_request.body == {"grant_type": "client_credentials", "scope": "store_v2_products store_v2_orders"}
    assert token_request.headers["authorization"] == basic_header(shop.client_id, shop.client_secret)
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert [r.headers["authorization"] for r in shop.api_requests] == ["Bearer at-1", "Bearer at-1"]


async def test_oauth2_token_is_fetched_again_after_it_expires(runtime: ConnectorRuntime) -> None:
    with FakeShop(token_ttl=1) as shop:  # cached for half its life: 0.5 s
        credential = Credential(kind="oauth2_client_credentials", secret=shop.client_secret,
                                client_id=shop.client_id)
        await runtime.call(oauth_manifest(shop), "getProduct", {"id": 1}, credential)
        await asyncio.sleep(0.7)
        result = await runtime.call(oauth_manifest(shop), "getProduct", {"id": 1}, credential)

        assert result.status == 200
        assert len(shop.token_requests) == 2
        assert [r.headers["authorization"] for r in shop.api_requests] == ["Bearer at-1", "Bearer at-2"]


async def test_oauth2_refreshes_once_on_401(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    credential = Credential(kind="oauth2_client_credentials", secret=shop.client_secret, client_id=shop.client_id)
    await runtime.call(oauth_manifest(shop), "getProduct", {"id": 1}, credential)
    shop.revoke_access_tokens()
    result = await runtime.call(oauth_manifest(shop), "getProduct", {"id": 4}, credential)

    assert (result.status, result.data) == (200, {"data": product(4)})
    assert len(shop.token_requests) == 2
    assert [r.headers["authorization"] for r in shop.api_requests] == ["Bearer at-1", "Bearer at-1", "Bearer at-2"]

    shop.reject_bearer = True  # every token refused: one refresh, then the 401 is the answer
    refused = await runtime.call(oauth_manifest(shop), "getProduct", {"id": 4}, credential)
    assert refused.status == 401
    assert len(shop.token_requests) == 3
    assert len(shop.api_requests) == 5


async def test_oauth2_refresh_token_rotation_is_handed_to_the_caller(runtime: ConnectorRuntime) -> None:
    with FakeShop(rotate_refresh_tokens=True) as shop:
        rotated: list[str] = []
        credential = Credential(kind="oauth2_refresh_token", secret="rt-0", client_id="shop-client")
        connector = oauth_manifest(shop, "oauth2_refresh_token")

        first = await runtime.call(connector, "getProduct", {"id": 1}, credential, on_refresh_token=rotated.append)
        shop.revoke_access_tokens()

        async def persist(token: str) -> None:
            rotated.append(token)

        second = await runtime.call(connector, "getProduct", {"id": 2}, credential, on_refresh_token=persist)

        assert (first.status, second.status) == (200, 200)
        assert rotated == ["rt-1", "rt-2"]
        assert [r.body for r in shop.token_requests] == [
            {"grant_type": "refresh_token", "refresh_token": "rt-0", "client_id": "shop-client"},
            {"grant_type": "refresh_token", "refresh_token": "rt-1", "client_id": "shop-client"},  # the rotated one
        ]
        assert "rt-" not in repr(first) + repr(second)


async def test_oauth2_token_endpoint_refusal_is_forbidden(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    credential = Credential(kind="oauth2_client_credentials", secret="wrong-secret-canary", client_id=shop.client_id)
    with pytest.raises(Forbidden) as caught:
        await runtime.call(oauth_manifest(shop), "getProduct", {"id": 1}, credential)

    assert caught.value.message == ("the OAuth2 token endpoint of connector shop refused the credential "
                                    "(HTTP 401, invalid_client)")
    assert shop.api_requests == []


# -- arguments -------------------------------------------------------------------------------------------------------
async def test_path_parameters_are_encoded_and_cannot_escape(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    connector = manifest(f"{shop.root}/v3")
    escaped = await runtime.call(connector, "getProduct", {"id": "../../admin"}, api_key(shop))
    odd = await runtime.call(connector, "getProduct", {"id": "a b?c#d/e"}, api_key(shop))

    assert escaped.status == 404
    assert [r.target for r in shop.requests] == ["/v3/catalog/products/..%2F..%2Fadmin",
                                                 "/v3/catalog/products/a%20b%3Fc%23d%2Fe"]
    assert odd.data == {"status": 404, "title": "The requested product was not found."}
    for dots in ("..", ".", ""):
        with pytest.raises(Invalid, match=r"path parameter id cannot be empty, '\.' or '\.\.'"):
            await runtime.call(connector, "getProduct", {"id": dots}, api_key(shop))
    assert len(shop.requests) == 2


async def test_unknown_and_disabled_operations(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    connector = manifest(f"{shop.root}/v3")
    with pytest.raises(NotFound) as unknown:
        await runtime.call(connector, "dropDatabase", {}, api_key(shop))
    with pytest.raises(Forbidden) as disabled:
        await runtime.call(connector, "archiveProducts", {}, api_key(shop))

    assert unknown.value.message == "connector shop has no operation 'dropDatabase'"
    assert unknown.value.hint is not None and "listProducts" in unknown.value.hint
    assert disabled.value.message == ("operation archiveProducts of connector shop is not enabled; an operator must "
                                      "enable it")
    assert shop.requests == []


async def test_missing_and_invalid_arguments_name_the_field(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    connector = manifest(f"{shop.root}/v3")
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("getProduct", {}, "connector shop operation getProduct is missing required argument(s): id"),
        ("createOrder", {}, "connector shop operation createOrder is missing required argument(s): body"),
        ("listProducts", {"limit": 500}, "connector shop operation listProducts: limit: 500 is greater than the "
                                         "maximum of 250"),
        ("listProducts", {"limit": "ten"}, "connector shop operation listProducts: limit: 'ten' is not of type "
                                           "'integer'"),
        ("createOrder", {"body": {"lines": [{"product_id": 1, "quantity": 1}]}},
         "connector shop operation createOrder: body: 'customer_id' is a required property"),
        ("createOrder", {"body": {"customer_id": 1, "lines": [{"product_id": 1, "quantity": 0}]}},
         "connector shop operation createOrder: body.lines[0].quantity: 0 is less than the minimum of 1"),
        ("getProduct", {"id": 1, "colour": "red"}, "connector shop operation getProduct has no parameter 'colour'"),
        ("getProduct", {"path": {"id": 1}, "query": {"colour": "red"}},
         "connector shop operation getProduct has no query parameter 'colour'"),
        ("listProducts", {"body": {"a": 1}}, "connector shop operation listProducts takes no body (GET)"),
    ]
    for operation, arguments, message in cases:
        with pytest.raises(Invalid) as caught:
            await runtime.call(connector, operation, arguments, api_key(shop))
        assert caught.value.message == message
    assert shop.requests == []


async def test_long_invalid_values_are_not_echoed(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    with pytest.raises(Invalid) as caught:
        await runtime.call(manifest(f"{shop.root}/v3"), "getProduct", {"id": 1, "include_fields": "z" * 5000},
                           api_key(shop))

    assert caught.value.message == ("connector shop operation getProduct: include_fields: the given str "
                                    "(5000 characters) is too long")
    assert shop.requests == []


async def test_header_injection_is_refused(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    sneaky = (Operation(name="sneaky", method="GET", path="/catalog/products", enabled=True,
                        parameters=(q("Authorization", location="header"), q("X-Auth-Token", location="header"),
                                    q("Cookie", location="header"), q("X-Note", location="header"))),)
    connector = manifest(f"{shop.root}/v3", operations=sneaky)
    for name in ("Authorization", "X-Auth-Token", "Cookie"):
        with pytest.raises(Invalid, match=f"argument '{name}' may not set that header"):
            await runtime.call(connector, "sneaky", {name: "Bearer stolen"}, api_key(shop))
    with pytest.raises(Invalid, match="header parameter X-Note contains a line break or NUL"):
        await runtime.call(connector, "sneaky", {"X-Note": "ok\r\nX-Auth-Token: forged"}, api_key(shop))
    assert shop.requests == []


# -- retries ---------------------------------------------------------------------------------------------------------
async def test_429_with_retry_after_then_success(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    shop.fail_next(429, times=1, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")  # an HTTP date, already past
    shop.fail_next(429, times=1, retry_after="0")
    result = await runtime.call(manifest(f"{shop.root}/v3"), "getProduct", {"id": 5}, api_key(shop))

    assert (result.status, result.data) == (200, {"data": product(5)})
    assert [r.target for r in shop.requests] == ["/v3/catalog/products/5"] * 3


async def test_503_exhausted_returns_the_last_answer(shop: FakeShop) -> None:
    shop.fail_next(503, times=10)
    async with ConnectorRuntime(max_retries=2, backoff_s=0.01) as runtime:
        result = await runtime.call(manifest(f"{shop.root}/v3"), "getProduct", {"id": 5}, api_key(shop))

    assert (result.status, result.data) == (503, {"status": 503, "title": "Unavailable"})
    assert len(shop.requests) == 3


async def test_502_on_a_post_is_not_retried(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    shop.fail_next(502, times=1)
    result = await runtime.call(manifest(f"{shop.root}/v3"), "createOrder",
                                {"body": {"customer_id": 1, "lines": [{"product_id": 1, "quantity": 1}]}},
                                api_key(shop))

    assert result.status == 502
    assert len(shop.requests) == 1


async def test_connection_refused_is_unavailable_after_retries(runtime: ConnectorRuntime) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(Unavailable) as caught:
        await runtime.call(manifest(f"http://127.0.0.1:{port}/v3"), "getProduct", {"id": 1},
                           Credential(kind="api_key", secret="canary-0d5e-conn"))

    assert caught.value.message.startswith(
        f"connector shop operation getProduct: could not connect to 127.0.0.1:{port} after 4 attempt(s)")
    assert "canary-0d5e-conn" not in str(caught.value)


async def test_slow_answer_times_out(shop: FakeShop) -> None:
    async with ConnectorRuntime(timeout_s=0.5) as runtime:
        with pytest.raises(Unavailable) as caught:
            await runtime.call(manifest(f"{shop.root}/v3"), "slow", {"seconds": "3"}, api_key(shop))

    assert caught.value.message == "connector shop operation slow: no complete response within 0.5 s"
    assert len(shop.requests) == 1


# -- pagination and size ---------------------------------------------------------------------------------------------
async def test_link_pagination_across_three_pages(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    result = await runtime.call(manifest(f"{shop.root}/v3"), "listProducts", {"limit": 3}, api_key(shop))

    assert (result.status, result.pages, result.truncated) == (200, 3, False)
    assert result.data["data"] == [product(n) for n in range(1, 8)]
    assert [r.query for r in shop.requests] == [{"limit": ["3"]}, {"page": ["2"], "limit": ["3"]},
                                                {"page": ["3"], "limit": ["3"]}]
    assert all(r.headers["x-auth-token"] == shop.api_key for r in shop.requests)


async def test_pagination_stops_at_max_pages(shop: FakeShop) -> None:
    async with ConnectorRuntime(max_pages=2) as runtime:
        result = await runtime.call(manifest(f"{shop.root}/v3"), "listProducts", {"limit": 3}, api_key(shop))

    assert (result.pages, result.truncated) == (2, True)
    assert [p["id"] for p in result.data["data"]] == [1, 2, 3, 4, 5, 6]
    assert len(shop.requests) == 2


async def test_pagination_never_follows_links_to_another_origin(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    shop.link_root = f"http://localhost:{shop.port}"  # same server, different origin: credentials must not go there
    result = await runtime.call(manifest(f"{shop.root}/v3"), "listProducts", {"limit": 3}, api_key(shop))

    assert (result.status, result.pages, result.truncated) == (200, 1, True)
    assert [p["id"] for p in result.data["data"]] == [1, 2, 3]
    assert len(shop.requests) == 1


async def test_oversized_answer_is_truncated(shop: FakeShop) -> None:
    async with ConnectorRuntime(max_response_bytes=10_000) as runtime:
        result = await runtime.call(manifest(f"{shop.root}/v3"), "big", {"bytes": "200000"}, api_key(shop))

    assert (result.status, result.truncated, result.pages) == (200, True, 1)
    assert isinstance(result.data, str)
    assert len(result.data.encode()) == 10_000
    assert result.data.startswith('["' + "x" * 98 + '", "')


# -- SSRF --------------------------------------------------------------------------------------------------------------
async def test_private_address_refused_without_allow_private_network(shop: FakeShop,
                                                                     runtime: ConnectorRuntime) -> None:
    for base in (f"{shop.root}/v3", f"http://localhost:{shop.port}/v3"):
        with pytest.raises(Forbidden) as caught:
            await runtime.call(manifest(base, allow_private=False), "getProduct", {"id": 1}, api_key(shop))
        assert "127.0.0.1, a loopback address; connectors may only reach public addresses" in caught.value.message
        assert caught.value.hint is not None and "allow_private_network" in caught.value.hint
    assert shop.requests == []


async def test_metadata_address_and_file_urls_refused(runtime: ConnectorRuntime) -> None:
    with pytest.raises(Forbidden) as metadata:
        await runtime.call(manifest("http://169.254.169.254/latest", allow_private=False), "getProduct", {"id": 1},
                           Credential(kind="api_key", secret="canary-7f3a-meta"))
    with pytest.raises(Forbidden) as file_url:
        await runtime.call(manifest("file:///etc", allow_private=True), "getProduct", {"id": 1},
                           Credential(kind="api_key", secret="canary-7f3a-file"))

    assert metadata.value.message == ("connector shop operation getProduct: host 169.254.169.254 resolves to "
                                      "169.254.169.254, a link-local (cloud metadata) address; connectors may only "
                                      "reach public addresses")
    assert file_url.value.message == ("connector shop operation getProduct: the URL scheme 'file' is refused; only "
                                      "http and https are allowed")


async def test_redirects_are_rechecked(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    connector = manifest(f"{shop.root}/v3")
    followed = await runtime.call(connector, "redirect", {"to": "/v3/catalog/products/6"}, api_key(shop))
    assert (followed.status, followed.data) == (200, {"data": product(6)})
    assert [r.target for r in shop.requests][-1] == "/v3/catalog/products/6"
    assert shop.requests[-1].headers["x-auth-token"] == shop.api_key  # same origin keeps its credential

    refused = {
        f"http://localhost:{shop.port}/v3/catalog/products/1": "host localhost resolves to 127.0.0.1, a loopback",
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254, a link-local (cloud metadata) address",
        "http://10.0.0.8/internal": "host 10.0.0.8 resolves to 10.0.0.8, a private address",
        f"https://127.0.0.1:{shop.port}/v3/catalog/products/1": "refused a redirect from http to https",
    }
    for target, message in refused.items():
        before = len(shop.requests)
        with pytest.raises(Forbidden) as caught:
            await runtime.call(connector, "redirect", {"to": target}, api_key(shop))
        assert message in caught.value.message
        assert len(shop.requests) == before + 1  # only the redirecting request reached the server


async def test_redirect_loop_gives_up_after_three(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    with pytest.raises(Unavailable, match="redirected more than 3 times"):
        await runtime.call(manifest(f"{shop.root}/v3"), "redirect", {}, api_key(shop))  # redirects to itself
    assert len(shop.requests) == 4


def test_blocked_address_classes() -> None:
    blocked = {"127.0.0.1": "loopback", "::1": "loopback", "10.1.2.3": "private", "172.16.0.1": "private",
               "192.168.1.1": "private", "fc00::1": "private", "169.254.169.254": "link-local (cloud metadata)",
               "fe80::1": "link-local (cloud metadata)", "0.0.0.0": "unspecified", "224.0.0.1": "multicast",
               "::ffff:127.0.0.1": "loopback", "2002:c0a8:0101::1": "private", "100.64.0.1": "non-public",
               "240.0.0.1": "private"}
    for address, reason in blocked.items():
        assert (address, blocked_reason(ipaddress.ip_address(address))) == (address, reason)
    for address in ("93.184.216.34", "2606:4700:4700::1111", "8.8.8.8"):
        assert blocked_reason(ipaddress.ip_address(address)) is None


async def test_connect_time_guard_refuses_loopback(shop: FakeShop) -> None:
    transport = guarded_transport()  # used directly, without the runtime's URL check
    try:
        with pytest.raises(Forbidden, match=r"resolves to 127\.0\.0\.1, a loopback address"):
            await transport.handle_async_request(httpx.Request("GET", f"{shop.root}/v3/catalog/products"))
    finally:
        await transport.aclose()
    assert shop.requests == []


# -- rate limit ------------------------------------------------------------------------------------------------------
async def test_rate_limit_spaces_requests(shop: FakeShop) -> None:
    async with ConnectorRuntime(rate_limits={"shop": (1.0, 1.0)}) as runtime:
        connector = manifest(f"{shop.root}/v3")
        results = await asyncio.gather(runtime.call(connector, "getProduct", {"id": 1}, api_key(shop)),
                                       runtime.call(connector, "getProduct", {"id": 2}, api_key(shop)))

    assert [r.status for r in results] == [200, 200]
    first, second = sorted(r.at for r in shop.requests)
    assert second - first >= 0.8


# -- credentials never leak ------------------------------------------------------------------------------------------
async def test_credentials_never_appear_in_repr_errors_or_results(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    canary = "canary-SECRET-7f3a9c"
    credential = Credential(kind="api_key", secret=canary)
    assert canary not in repr(credential) and canary not in str(credential)
    assert repr(credential) == "Credential(kind='api_key', client_id=None, secret='[redacted]')"

    refused = await runtime.call(manifest(f"{shop.root}/v3"), "getProduct", {"id": 1}, credential)
    assert refused.status == 401
    assert shop.requests[0].headers["x-auth-token"] == canary  # it was sent, and the API echoed it back...
    assert refused.data == {"status": 401, "title": "Unauthorized",
                            "detail": "the credential '[redacted]' is not valid for this store"}  # ...redacted here
    assert canary not in repr(refused)

    query_scheme = AuthScheme(kind="api_key", name="api_key", location="query")
    in_query = await runtime.call(manifest(f"{shop.root}/v3", auth=(query_scheme,)), "getProduct", {"id": 1},
                                  credential)
    assert (in_query.status, canary in repr(in_query)) == (401, False)

    basic = Credential(kind="basic", secret=f"someone:{canary}")
    echoed = await runtime.call(manifest(f"{shop.root}/v3", auth=(AuthScheme(kind="basic"),)), "getProduct",
                                {"id": 1}, basic)
    encoded = base64.b64encode(f"someone:{canary}".encode()).decode()
    assert echoed.status == 401
    assert canary not in repr(echoed) and encoded not in repr(echoed)

    with pytest.raises(Forbidden) as forbidden:
        await runtime.call(manifest("http://169.254.169.254/v3", allow_private=False), "getProduct", {"id": 1},
                           credential)
    assert canary not in str(forbidden.value) and canary not in repr(forbidden.value)


@pytest.mark.parametrize("kind", ["api_key", "bearer", "basic"])
async def test_a_credential_echoed_in_any_encoding_is_redacted(shop: FakeShop, runtime: ConnectorRuntime,
                                                               kind: str) -> None:
    secret = {"api_key": shop.api_key, "bearer": shop.bearer_token, "basic": ":".join(shop.basic)}[kind]
    scheme = API_KEY if kind == "api_key" else AuthScheme(kind=kind)  # type: ignore[arg-type]
    result = await runtime.call(manifest(f"{shop.root}/v3", auth=(scheme,)), "getAccount", {},
                                Credential(kind=kind, secret=secret))  # type: ignore[arg-type]
    assert result.status == 200 and result.data["account"] == "demo"
    echoed = echoed_encodings(secret)
    assert result.data["debug"].keys() == echoed.keys()
    for name, value in result.data["debug"].items():
        assert "[redacted]" in value and value != echoed[name], name
    assert not [form for form in echoed.values() if form in repr(result)]
    password = shop.basic[1]
    assert kind != "basic" or not [f for f in echoed_encodings(password).values() if f in repr(result)]


async def test_missing_or_mismatched_credential_fails_closed(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    connector = manifest(f"{shop.root}/v3")
    with pytest.raises(Forbidden) as missing:
        await runtime.call(connector, "getProduct", {"id": 1}, None)
    with pytest.raises(Forbidden) as mismatched:
        await runtime.call(connector, "getProduct", {"id": 1}, Credential(kind="bearer", secret="tok-123456"))

    assert missing.value.message == "connector shop needs a credential (api_key) and none was given"
    assert mismatched.value.message == "the credential given is bearer but connector shop accepts api_key"
    assert shop.requests == []


async def test_connector_without_auth_sends_no_credential(shop: FakeShop, runtime: ConnectorRuntime) -> None:
    result: CallResult = await runtime.call(manifest(f"{shop.root}/v3", auth=()), "getProduct", {"id": 1}, None)

    assert result.status == 401
    assert result.data == {"status": 401, "title": "Unauthorized",
                           "detail": "the credential '' is not valid for this store"}
    assert "authorization" not in shop.requests[0].headers and "x-auth-token" not in shop.requests[0].headers


async def test_two_header_api_keys_send_each_key_from_one_credential(shop: FakeShop,
                                                                     runtime: ConnectorRuntime) -> None:
    """APIs such as Alpaca want a key id and a secret key, each in its own header."""
    key_id = AuthScheme(kind="api_key", name="X-Key-Id")
    both = manifest(f"{shop.root}/v3", auth=(key_id, API_KEY))
    secret = json.dumps({"X-Key-Id": "key-id-123456", "X-Auth-Token": shop.api_key})
    result = await runtime.call(both, "getProduct", {"id": 1}, Credential(kind="api_key", secret=secret))
    assert result.status == 200
    [sent] = shop.requests
    assert sent.headers["x-key-id"] == "key-id-123456" and sent.headers["x-auth-token"] == shop.api_key

    with pytest.raises(Forbidden) as caught:
        await runtime.call(both, "getProduct", {"id": 1}, Credential(kind="api_key", secret=shop.api_key))
    assert "sends 2 api keys (X-Key-Id, X-Auth-Token)" in caught.value.message
    assert caught.value.hint == 'store it as a JSON object: {"X-Key-Id": "...", "X-Auth-Token": "..."}'
    assert shop.api_key not in caught.value.message and len(shop.requests) == 1
