"""Catalog import against real published API descriptions (commerce, travel, media, finance) and edge cases."""

from __future__ import annotations

import copy
import hashlib
import http.server
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from oshal.connectors.importer import MAX_DOCUMENT_BYTES, import_openapi, load_document, money_effects
from oshal.connectors.importer.openapi import MONEY_WORDS
from oshal.connectors.manifest import MONEY_EFFECTS, OPERATION_NAME_PATTERN, ConnectorManifest, Operation
from oshal.errors import Invalid, TooLarge

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "openapi"
SPEC_FILES = sorted(p for p in SPECS.glob("*/*") if p.suffix in (".json", ".yml", ".yaml"))
METHODS = {"get", "put", "post", "delete", "options", "head", "patch"}


_raw: dict[str, dict[str, Any]] = {}


def raw(relative: str) -> dict[str, Any]:
    """A fresh copy of the document, parsed independently of the importer."""
    if relative not in _raw:
        text = (SPECS / relative).read_text()
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        _raw[relative] = json.loads(text) if relative.endswith(".json") else yaml.load(text, Loader=loader)
    return copy.deepcopy(_raw[relative])


_cache: dict[str, ConnectorManifest] = {}


def imported(relative: str, **kwargs: Any) -> ConnectorManifest:
    if kwargs:
        return import_openapi(raw(relative), **kwargs)
    if relative not in _cache:
        _cache[relative] = import_openapi(raw(relative))
    return _cache[relative]


def op(manifest: ConnectorManifest, name: str) -> Operation:
    found = manifest.operation(name)
    assert found is not None, f"{name} not in {manifest.id}"
    return found


def param(operation: Operation, name: str) -> Any:
    return next(p for p in operation.parameters if p.name == name)


def oas3(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "Test API", "version": "1.0"}, "paths": paths, **extra}


# ------------------------------------------------------------------------------------- every real document


def test_the_spec_folder_holds_all_four_families() -> None:
    assert [p.relative_to(SPECS).as_posix() for p in SPEC_FILES] == [
        "commerce/bigcommerce-carts.v3.yml",
        "commerce/bigcommerce-catalog.v3.yml",
        "commerce/bigcommerce-orders.v3.yml",
        "finance/alpaca-market-data.yaml",
        "finance/alpaca-trading.yaml",
        "media/spotify-web-api.yml",
        "travel/amadeus-airport-city-search.v1.json",
        "travel/amadeus-flight-offers-search.v2.json",
        "travel/amadeus-hotel-search.v3.json",
    ]


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")  # a regex in an Amadeus "pattern"
@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.name)
def test_every_real_document_imports_every_operation(spec: Path) -> None:
    document, origin = load_document(str(spec))
    pristine = copy.deepcopy(document)
    expected = sorted(
        (path, method.upper())
        for path, item in raw(spec.relative_to(SPECS).as_posix())["paths"].items()
        if isinstance(item, dict)
        for method in item
        if method in METHODS
    )
    manifest = import_openapi(document, category=spec.parent.name, source=origin)

    assert len(manifest.operations) == len(expected)
    assert sorted((o.path, o.method) for o in manifest.operations) == expected
    assert all(not o.enabled for o in manifest.operations)
    names = [o.name for o in manifest.operations]
    assert len(set(names)) == len(names)
    assert all(re.match(OPERATION_NAME_PATTERN, n) for n in names)
    assert '"$ref"' not in manifest.canonical_bytes().decode()  # every reference resolved (or cut)
    assert manifest.category == spec.parent.name
    assert manifest.source["origin"] == str(spec) and manifest.publisher == "imported"
    assert document == pristine  # the caller's document is never modified
    for operation in manifest.operations:
        schemas = [p.json_schema for p in operation.parameters] + [operation.body_schema, operation.output_schema]
        for schema in filter(None, schemas):
            Draft202012Validator.check_schema(schema)  # what the runtime validates calls with
        if operation.method == "DELETE":
            assert (operation.risk, operation.effects[0]) == ("destructive", "delete")
        elif operation.method in ("GET", "HEAD", "OPTIONS"):
            assert (operation.risk, operation.effects) == ("read", ())
        else:
            assert operation.risk in ("write", "money")
        for path_param in operation.path_parameters():
            assert param(operation, path_param).required is True


def test_operation_counts_per_document() -> None:
    counts = {p.name: len(imported(p.relative_to(SPECS).as_posix()).operations) for p in SPEC_FILES}
    assert counts == {
        "bigcommerce-carts.v3.yml": 8,
        "bigcommerce-catalog.v3.yml": 105,
        "bigcommerce-orders.v3.yml": 14,
        "alpaca-market-data.yaml": 36,
        "alpaca-trading.yaml": 29,
        "spotify-web-api.yml": 97,
        "amadeus-airport-city-search.v1.json": 2,
        "amadeus-flight-offers-search.v2.json": 2,
        "amadeus-hotel-search.v3.json": 2,
    }


# ------------------------------------------------------------------------------------ commerce: BigCommerce


def test_bigcommerce_is_swagger2_with_an_api_key_header_and_a_templated_base_path() -> None:
    carts = imported("commerce/bigcommerce-carts.v3.yml")
    assert carts.id == "carts"
    assert carts.version == "unversioned"  # info.version is "" in the published document
    assert carts.source["kind"] == "swagger" and carts.source["spec_version"] == "2.0"
    assert carts.base_url == "https://api.bigcommerce.com/stores/{$$.env.store_hash}/v3"
    assert [(a.kind, a.name, a.location) for a in carts.auth] == [("api_key", "X-Auth-Token", "header")]
    assert imported("commerce/bigcommerce-orders.v3.yml").id == "orders-v3"


def test_bigcommerce_carts_body_parameter_and_transport_headers() -> None:
    create = op(imported("commerce/bigcommerce-carts.v3.yml"), "createACart")
    assert (create.method, create.path, create.risk) == ("POST", "/carts", "write")
    assert [(p.name, p.location) for p in create.parameters] == [("include", "query")]  # Accept/Content-Type dropped
    assert create.body_required is True
    assert create.body_schema is not None and "line_items" in create.body_schema["properties"]
    delete = op(imported("commerce/bigcommerce-carts.v3.yml"), "deleteACart")
    assert (delete.method, delete.path, delete.risk, delete.effects) == ("DELETE", "/carts/{cartId}", "destructive",
                                                                         ("delete",))


def test_bigcommerce_catalog_ref_parameters_resolve_to_real_schemas() -> None:
    catalog = imported("commerce/bigcommerce-catalog.v3.yml")
    videos = op(catalog, "getProductVideos")
    assert (videos.method, videos.path, videos.risk) == ("GET", "/catalog/products/{product_id}/videos", "read")
    page = param(videos, "page")  # $ref: '#/parameters/PageParam'
    assert (page.location, page.required, page.json_schema) == ("query", False, {"type": "integer"})
    assert page.description == "Specifies the page number in a limited (paginated) list of products."
    id_in = param(op(catalog, "getProducts"), "id:in")  # $ref: '#/parameters/FilterIdIn', Swagger 2 array param
    assert id_in.json_schema == {"type": "array", "items": {"type": "integer"}}
    product_id = param(op(catalog, "deleteProductById"), "product_id")  # declared once at path level
    assert (product_id.location, product_id.required, product_id.json_schema) == ("path", True, {"type": "integer"})


def test_bigcommerce_catalog_body_formdata_and_recursive_category_tree() -> None:
    catalog = imported("commerce/bigcommerce-catalog.v3.yml")
    create = op(catalog, "createProduct")
    assert create.body_required is True and create.body_schema is not None
    base, extra = create.body_schema["allOf"]  # allOf: [$ref product_Base, inline object]
    assert base["title"] == "product_Base" and base["required"] == ["name", "type", "weight", "price"]
    assert base["properties"]["price"]["type"] == "number"
    assert extra["type"] == "object"
    image = op(catalog, "createCategoryImage")  # multipart formData with a file field
    assert image.body_schema == {"type": "object", "properties": {"image_file": {"type": "string", "format": "binary"}}}
    assert image.body_required is False
    tree = op(catalog, "getCategoryTree")
    assert tree.output_schema is not None
    node = tree.output_schema["properties"]["data"]["items"]
    assert node["title"] == "categoriesTreeNode_Full"
    children = node["properties"]["children"]["items"]
    assert children == {"description": "recursive: #/definitions/categoriesTreeNode_Full"}
    assert op(catalog, "deleteProducts").risk == "destructive"
    assert op(catalog, "getProducts").output_schema is not None


def test_bigcommerce_orders_money_operations() -> None:
    orders = imported("commerce/bigcommerce-orders.v3.yml")
    refund = op(orders, "postrefund")
    assert (refund.method, refund.path) == ("POST", "/orders/{order_id}/payment_actions/refunds")
    assert refund.risk == "money" and refund.effects == ("order", "payment", "refund")
    assert refund.body_schema is not None and "items" in refund.body_schema["properties"]
    assert op(orders, "paymentactioncapture").risk == "money"
    assert op(orders, "getTransactions").risk == "read"  # reading about money is a read
    assert op(orders, "deleteOrderMetafieldById").risk == "destructive"


# ----------------------------------------------------------------------------------------- finance: Alpaca


def test_alpaca_trading_openapi3_auth_servers_and_order_money() -> None:
    trading = imported("finance/alpaca-trading.yaml")
    assert trading.id == "trader-api" and trading.version == "2.0.0" and trading.title == "Trader API"
    assert trading.source["kind"] == "openapi" and trading.source["spec_version"] == "3.0.0"
    assert trading.base_url == "https://paper-api.alpaca.markets"  # the first of the two servers
    assert [(a.kind, a.name, a.location) for a in trading.auth] == [
        ("api_key", "APCA-API-KEY-ID", "header"),
        ("api_key", "APCA-API-SECRET-KEY", "header"),
    ]
    post = op(trading, "postOrder")
    assert (post.method, post.path, post.risk, post.effects) == ("POST", "/v2/orders", "money", ("order",))
    assert post.body_required is True and post.body_schema is not None
    assert post.body_schema["properties"]["symbol"]["type"] == "string"
    # Order.legs is an array of Order: the cycle is cut with a placeholder
    assert post.body_schema["properties"]["legs"]["items"] == {"description": "recursive: #/components/schemas/Order"}
    assert op(trading, "patchOrderByOrderId").risk == "money"
    assert op(trading, "getAllOrders").risk == "read"
    assert op(trading, "deleteAllOrders").risk == "destructive"
    assert op(trading, "postWatchlist").risk == "write"
    account = op(trading, "getAccount")
    assert (account.method, account.path, account.risk) == ("GET", "/v2/account", "read")
    assert account.output_schema is not None and "buying_power" in account.output_schema["properties"]


def test_alpaca_market_data_component_parameters_resolved() -> None:
    data = imported("finance/alpaca-market-data.yaml")
    assert data.base_url == "https://data.alpaca.markets"
    assert {o.risk for o in data.operations} == {"read"}
    bars = op(data, "getBarsForMultipleStockSymbols")
    assert (bars.method, bars.path) == ("GET", "/v2/stocks/bars")
    symbols = param(bars, "symbols")  # $ref: '#/components/parameters/stock-symbols'
    assert (symbols.location, symbols.required, symbols.json_schema["type"]) == ("query", True, "string")
    assert param(bars, "timeframe").required is True


# ------------------------------------------------------------------------------------------ media: Spotify


def test_spotify_oauth2_authorization_code_becomes_refresh_token() -> None:
    spotify = imported("media/spotify-web-api.yml")
    assert spotify.id == "spotify-web-api-with-fixes-and-improvements-from-sonallux"
    assert spotify.base_url == "https://api.spotify.com/v1"
    assert len(spotify.auth) == 1
    auth = spotify.auth[0]
    assert (auth.kind, auth.token_url) == ("oauth2_refresh_token", "https://accounts.spotify.com/api/token")
    assert len(auth.scopes) == 19 and "playlist-modify-public" in auth.scopes


def test_spotify_operations_parameters_and_bodies() -> None:
    spotify = imported("media/spotify-web-api.yml")
    album = op(spotify, "get-an-album")
    assert (album.method, album.path, album.risk) == ("GET", "/albums/{id}", "read")
    album_id = param(album, "id")  # $ref: '#/components/parameters/PathAlbumId'
    assert album_id.json_schema["title"] == "Spotify Album ID" and album_id.json_schema["type"] == "string"
    assert album_id.description.startswith("The [Spotify ID]")  # falls back to the schema's description
    assert album.output_schema is not None and album.output_schema["x-spotify-docs-type"] == "AlbumObject"
    cover = op(spotify, "upload-custom-playlist-cover")  # image/jpeg is the only media type
    assert cover.body_schema is not None and cover.body_schema["format"] == "base64" and cover.body_required
    assert cover.output_schema is None  # 202 without content
    reorder = op(spotify, "reorder-or-replace-playlists-items")  # "reorder" is not "order"
    assert (reorder.method, reorder.risk, reorder.effects) == ("PUT", "write", ())
    assert op(spotify, "remove-tracks-user").risk == "destructive"
    # Known over-match, by design of the heuristic (errs towards money): "Transfer Playback" says "transfer".
    assert op(spotify, "transfer-a-users-playback").effects == ("transfer",)


# ----------------------------------------------------------------------------------------- travel: Amadeus


def test_amadeus_swagger2_declares_no_security_scheme() -> None:
    flights = imported("travel/amadeus-flight-offers-search.v2.json")
    assert flights.id == "flight-offers-search" and flights.version == "2.9.1"
    assert flights.base_url == "https://test.api.amadeus.com/v2"
    assert [a.kind for a in flights.auth] == ["none"]  # the published document has no securityDefinitions
    assert flights.source["skipped_auth"] == []


def test_amadeus_with_its_oauth2_application_flow_declared() -> None:
    document = raw("travel/amadeus-flight-offers-search.v2.json")
    document["securityDefinitions"] = {
        "amadeus": {"type": "oauth2", "flow": "application",
                    "tokenUrl": "https://test.api.amadeus.com/v1/security/oauth2/token", "scopes": {}},
    }
    manifest = import_openapi(document, connector_id="amadeus-flights", category="travel")
    assert manifest.id == "amadeus-flights"
    assert [(a.kind, a.token_url, a.scopes) for a in manifest.auth] == [
        ("oauth2_client_credentials", "https://test.api.amadeus.com/v1/security/oauth2/token", ()),
    ]


def test_amadeus_flight_offers_body_and_query_parameters() -> None:
    flights = imported("travel/amadeus-flight-offers-search.v2.json")
    search = op(flights, "searchFlightOffers")
    assert (search.method, search.path, search.risk) == ("POST", "/shopping/flight-offers", "write")
    override = param(search, "X-HTTP-Method-Override")  # $ref: '#/parameters/getOverride'
    assert (override.location, override.required, override.json_schema) == ("header", True,
                                                                             {"type": "string", "default": "GET"})
    assert search.body_required is True and search.body_schema is not None
    assert search.body_schema["title"] == "getFlightOffersQuery"
    assert search.body_schema["required"] == ["originDestinations", "travelers", "sources"]
    get = op(flights, "getFlightOffers")
    assert [p.name for p in get.parameters if p.required] == [
        "originLocationCode", "destinationLocationCode", "departureDate", "adults",
    ]
    assert param(get, "adults").json_schema["type"] == "integer"
    assert get.output_schema is not None and "data" in get.output_schema["properties"]


def test_amadeus_airport_city_search_ref_parameters() -> None:
    search = op(imported("travel/amadeus-airport-city-search.v1.json"), "getAirportCitySearch")
    assert param(search, "page[limit]").json_schema == {"type": "integer", "default": 10}
    assert param(search, "subType").json_schema == {"type": "array", "items": {"type": "string",
                                                                              "enum": ["AIRPORT", "CITY"]}}
    hotels = imported("travel/amadeus-hotel-search.v3.json")
    adults = param(op(hotels, "getMultiHotelOffers"), "adults")  # draft-4 "exclusiveMaximum: false" is dropped
    assert adults.json_schema == {"type": "integer", "format": "int32", "default": 1, "minimum": 1, "maximum": 9}
    pricing = op(hotels, "getOfferPricing")
    assert (pricing.method, pricing.path) == ("GET", "/shopping/hotel-offers/{offerId}")


# ------------------------------------------------------------------------------------------------ digests


def test_document_digest_is_canonical_and_stable() -> None:
    first = imported("commerce/bigcommerce-catalog.v3.yml", source="a")
    second = imported("commerce/bigcommerce-catalog.v3.yml", source="a")
    assert first.source["sha256"] == second.source["sha256"]
    assert first.digest() == second.digest()
    document = raw("travel/amadeus-hotel-search.v3.json")
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    manifest = import_openapi(document)
    assert manifest.source["sha256"] == hashlib.sha256(canonical).hexdigest()
    reordered = dict(reversed(list(document.items())))  # key order does not matter
    assert import_openapi(reordered).source["sha256"] == manifest.source["sha256"]
    document["info"]["version"] = "3.0.10"
    assert import_openapi(document).source["sha256"] != manifest.source["sha256"]


# ---------------------------------------------------------------------------------------------- $refs


def test_cyclic_refs_are_cut_never_followed_forever() -> None:
    document = oas3(
        {"/nodes": {"post": {
            "operationId": "createNode",
            "requestBody": {"$ref": "#/components/requestBodies/NodeBody"},
            "responses": {"201": {"$ref": "#/components/responses/Created"}},
        }}},
        components={
            "requestBodies": {"NodeBody": {"required": True, "content": {
                "application/xml": {"schema": {"type": "string"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/Alias"}},
            }}},
            "responses": {"Created": {"description": "ok", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Ping"}}}}},
            "schemas": {
                "Alias": {"$ref": "#/components/schemas/Node"},  # a ref to a ref
                "Node": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                    "parent": {"$ref": "#/components/schemas/Alias", "description": "up"},
                }},
                "Ping": {"type": "object", "properties": {"pong": {"$ref": "#/components/schemas/Pong"}}},
                "Pong": {"type": "object", "properties": {"ping": {"$ref": "#/components/schemas/Ping"}}},
            },
        },
    )
    operation = import_openapi(document).operations[0]
    assert operation.body_required is True
    assert operation.body_schema == {"type": "object", "properties": {
        "name": {"type": "string"},
        "children": {"type": "array", "items": {"description": "recursive: #/components/schemas/Node"}},
        "parent": {"description": "up"},  # the sibling description wins over the placeholder's
    }}
    assert operation.output_schema == {"type": "object", "properties": {"pong": {"type": "object", "properties": {
        "ping": {"description": "recursive: #/components/schemas/Ping"}}}}}


def test_refs_to_refs_only_cycle_and_escaped_pointers() -> None:
    document = oas3(
        {"/a": {"get": {"parameters": [{"$ref": "#/components/parameters/a~1b"}],
                        "responses": {"200": {"description": "ok", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Loop1"}}}}}}}},
        components={
            "parameters": {"a/b": {"name": "q", "in": "query", "schema": {"$ref": "#/components/schemas/Q%20S"}}},
            "schemas": {
                "Loop1": {"$ref": "#/components/schemas/Loop2"},
                "Loop2": {"$ref": "#/components/schemas/Loop1"},
                "Q S": {"type": "string", "enum": ["x", "y"]},
            },
        },
    )
    operation = import_openapi(document).operations[0]
    assert operation.name == "get_a"
    assert param(operation, "q").json_schema == {"type": "string", "enum": ["x", "y"]}
    assert operation.output_schema == {"description": "recursive: #/components/schemas/Loop1"}


def test_external_and_dangling_refs_are_named() -> None:
    external = oas3({"/a": {"get": {"parameters": [{"$ref": "common.yaml#/parameters/Page"}], "responses": {}}}})
    with pytest.raises(Invalid, match=r"external \$ref 'common.yaml#/parameters/Page'") as info:
        import_openapi(external)
    assert info.value.hint is not None and "bundle" in info.value.hint
    dangling = oas3({"/a": {"get": {"responses": {"200": {"description": "ok", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Missing"}}}}}}}})
    with pytest.raises(Invalid, match=r"'#/components/schemas/Missing' points at nothing"):
        import_openapi(dangling)


def test_ref_like_data_in_examples_is_left_alone() -> None:
    schema = {"type": "object", "example": {"$ref": "not-a-ref.yaml"},
              "properties": {"example": {"$ref": "#/components/schemas/S"}}}
    document = oas3({"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": schema}}},
                                     "responses": {}}}},
                    components={"schemas": {"S": {"type": "integer"}}})
    body = import_openapi(document).operations[0].body_schema
    assert body == {"type": "object", "example": {"$ref": "not-a-ref.yaml"},
                    "properties": {"example": {"type": "integer"}}}


def test_ref_and_alias_bombs_are_refused() -> None:
    schemas: dict[str, Any] = {
        f"S{i}": {"type": "object", "properties": {"a": {"$ref": f"#/components/schemas/S{i + 1}"},
                                                   "b": {"$ref": f"#/components/schemas/S{i + 1}"}}}
        for i in range(40)
    }
    schemas["S40"] = {"type": "string"}
    response = {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}
    bomb = oas3({"/x": {"get": {"responses": {"200": response}}}}, components={"schemas": schemas})
    with pytest.raises(TooLarge, match=r"expanding the document's \$refs produces more than 3,000,000"):
        import_openapi(bomb)  # 2**40 nodes if inlined naively
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]" for i in range(7)]
    aliases = yaml.safe_load("openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths: {}\n" + "\n".join(lines))
    with pytest.raises(TooLarge, match="expands to more than 3,000,000 nodes") as info:
        import_openapi(aliases)  # 10**8 nodes once the aliases are expanded
    assert info.value.hint is not None and "aliases" in info.value.hint


def test_absurdly_deep_documents_are_invalid_not_a_crash() -> None:
    schemas: dict[str, Any] = {f"S{i}": {"$ref": f"#/components/schemas/S{i + 1}"} for i in range(3000)}
    schemas["S3000"] = {"type": "string"}
    response = {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}
    deep = oas3({"/x": {"get": {"responses": {"200": response}}}}, components={"schemas": schemas})
    with pytest.raises(Invalid, match="nested too deeply"):
        import_openapi(deep)


def test_openapi30_and_swagger2_dialect_becomes_json_schema_2020_12() -> None:
    schema = {"type": "object", "required": ["n"], "properties": {
        "n": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 5, "exclusiveMaximum": False},
        "s": {"type": "string", "nullable": True, "enum": ["a", "b"], "required": True},
        "t": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
        "f": {"type": "file"},
    }}
    document = oas3({"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": schema}}},
                                     "responses": {}}}})
    body = import_openapi(document).operations[0].body_schema
    assert body == {"type": "object", "required": ["n"], "properties": {
        "n": {"type": "number", "exclusiveMinimum": 0, "maximum": 5},
        "s": {"type": ["string", "null"], "nullable": True, "enum": ["a", "b", None]},
        "t": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
        "f": {"type": "string", "format": "binary"},
    }}
    Draft202012Validator.check_schema(body)
    assert not list(Draft202012Validator(body).iter_errors({"n": 0.5, "s": None}))
    assert list(Draft202012Validator(body).iter_errors({"n": 0}))  # exclusive
    # OpenAPI 3.1 is JSON Schema already: "nullable" means nothing there and is left alone
    document["openapi"] = "3.1.0"
    assert import_openapi(document).operations[0].body_schema["properties"]["s"]["type"] == "string"
    trading = imported("finance/alpaca-trading.yaml")
    assert op(trading, "postOrder").body_schema["properties"]["limit_price"]["type"] == ["string", "null"]


# ------------------------------------------------------------------------------- names, parameters, bodies


def test_operation_names_are_sanitised_derived_and_unique() -> None:
    document = oas3({
        "/pets/{petId}": {
            "get": {"operationId": "get pet/{id}!", "responses": {}},
            "put": {"operationId": "getPetId", "responses": {}},
            "patch": {"operationId": "getPetId", "responses": {}},
            "delete": {"responses": {}},
        },
        "/2fa": {"post": {"operationId": "2fa", "responses": {}}},
    })
    names = [(o.method, o.name) for o in import_openapi(document).operations]
    assert names == [("GET", "get_pet_id"), ("PUT", "getPetId"), ("PATCH", "getPetId_2"),
                     ("DELETE", "delete_pets_petId"), ("POST", "op_2fa")]


def test_operation_parameters_override_path_parameters_and_cookies_are_skipped() -> None:
    document = oas3({"/items/{id}": {
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 10}},
            {"name": "session", "in": "cookie", "schema": {"type": "string"}},
        ],
        "get": {
            "parameters": [
                {"name": "limit", "in": "query", "required": True, "description": "page size",
                 "schema": {"type": "integer", "maximum": 100}},
                {"name": "limit", "in": "header", "schema": {"type": "string"}},
                {"name": "Authorization", "in": "header", "schema": {"type": "string"}},
                {"name": "filter", "in": "query", "content": {"application/json": {"schema": {"type": "object"}}}},
            ],
            "responses": {"204": {"description": "none"}, "2XX": {"description": "ok", "content": {
                "application/vnd.api+json": {"schema": {"type": "array"}}}}},
        },
    }})
    operation = import_openapi(document).operations[0]
    assert [(p.name, p.location, p.required, p.description, p.json_schema) for p in operation.parameters] == [
        ("id", "path", True, "", {"type": "string"}),
        ("limit", "query", True, "page size", {"type": "integer", "maximum": 100}),
        ("limit", "header", False, "", {"type": "string"}),
        ("filter", "query", False, "", {"type": "object"}),
    ]
    assert operation.output_schema == {"type": "array"}  # 204 has no schema; '2XX' +json does


def test_swagger2_form_data_folds_into_an_object_body() -> None:
    document = {
        "swagger": "2.0", "info": {"title": "Uploads", "version": "7"}, "host": "files.example.com",
        "basePath": "/api/", "schemes": ["http", "https"],
        "securityDefinitions": {"basic": {"type": "basic"},
                                "code": {"type": "oauth2", "flow": "accessCode", "tokenUrl": "https://x/token",
                                         "authorizationUrl": "https://x/auth", "scopes": {"files:write": "w"}},
                                "implicit": {"type": "oauth2", "flow": "implicit", "authorizationUrl": "https://x/a",
                                             "scopes": {}}},
        "paths": {"/files": {"post": {
            "operationId": "upload",
            "parameters": [
                {"name": "file", "in": "formData", "type": "file", "required": True},
                {"name": "note", "in": "formData", "type": "string", "maxLength": 80},
            ],
            "responses": {"201": {"description": "made", "schema": {"type": "object"}}},
        }}},
    }
    manifest = import_openapi(document)
    assert manifest.base_url == "http://files.example.com/api"
    upload = manifest.operations[0]
    assert upload.body_schema == {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"}, "note": {"type": "string", "maxLength": 80}}}
    assert upload.body_required is True and upload.output_schema == {"type": "object"}
    assert [(a.kind, a.token_url, a.scopes) for a in manifest.auth] == [
        ("basic", None, ()), ("oauth2_refresh_token", "https://x/token", ("files:write",)),
    ]
    assert manifest.source["skipped_auth"] == ["implicit (oauth2)"]


def test_openapi3_auth_schemes_and_server_variables() -> None:
    document = oas3(
        {"/ping": {"head": {"responses": {"200": {"description": "ok"}}}}},
        servers=[{"url": "https://{region}.example.com/{base}/", "variables": {
            "region": {"default": "eu", "enum": ["eu", "us"]}, "base": {"default": "v2"}}}],
        components={"securitySchemes": {
            "key": {"type": "apiKey", "in": "query", "name": "api_key"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "sid"},
            "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "basic": {"type": "http", "scheme": "basic"},
            "oauth": {"type": "oauth2", "flows": {
                "clientCredentials": {"tokenUrl": "https://auth.example.com/token", "scopes": {"a": "", "b": ""}},
                "implicit": {"authorizationUrl": "https://auth.example.com/auth", "scopes": {}},
            }},
        }},
    )
    manifest = import_openapi(document, publisher="acme", category="ops")
    assert manifest.base_url == "https://eu.example.com/v2"
    assert [(a.kind, a.name, a.location, a.token_url, a.scopes) for a in manifest.auth] == [
        ("api_key", "api_key", "query", None, ()),
        ("bearer", "", "header", None, ()),
        ("basic", "", "header", None, ()),
        ("oauth2_client_credentials", "", "header", "https://auth.example.com/token", ("a", "b")),
    ]
    assert manifest.source["skipped_auth"] == ["cookie (apiKey)"]
    assert (manifest.publisher, manifest.category, manifest.id) == ("acme", "ops", "test-api")
    assert manifest.operations[0].risk == "read" and manifest.operations[0].name == "head_ping"


def test_relative_servers_and_no_servers() -> None:
    assert import_openapi(oas3({}, servers=[{"url": "/api/v3"}])).base_url == "/api/v3"
    assert import_openapi(oas3({})).base_url == "/"
    swagger = {"swagger": "2.0", "info": {"title": "t t", "version": "1"}, "basePath": "/v1", "paths": {}}
    assert import_openapi(swagger).base_url == "/v1"
    assert import_openapi({**swagger, "host": "api.example.com"}).base_url == "https://api.example.com/v1"


def test_openapi31_and_yaml_typed_values() -> None:
    text = (
        "openapi: 3.1.0\ninfo: {title: '2024 Ledger', version: 2024-05-01}\n"
        "paths:\n  /payments:\n    post:\n      responses:\n        201:\n          description: made\n"
        "          content: {application/json: {schema: {type: [object, 'null']}}}\n"
    )
    manifest = import_openapi(yaml.safe_load(text))
    assert manifest.id == "api-2024-ledger" and manifest.version == "2024-05-01"
    operation = manifest.operations[0]
    assert (operation.name, operation.risk, operation.effects) == ("post_payments", "money", ("payment",))
    assert operation.output_schema == {"type": ["object", "null"]}


def test_money_heuristic() -> None:
    assert set(MONEY_WORDS.values()) <= MONEY_EFFECTS  # every word declares an effect the manifest knows
    assert money_effects("POST", "/v1/checkouts/{id}/complete") == ("purchase",)
    assert money_effects("POST", "/x", operation_id="createCharge") == ("charge",)
    assert money_effects("PUT", "/accounts/{id}", summary="Transfer funds") == ("transfer",)
    assert money_effects("GET", "/orders") == ()
    assert money_effects("POST", "/borders") == ()
    assert money_effects("POST", "/playlists/{id}/reorder") == ()
    assert money_effects("POST", "/{order}/items") == ()  # a path parameter is not a resource name


# ------------------------------------------------------------------------------------- invalid documents


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"info": {"title": "x"}, "paths": {}}, "neither an 'openapi' nor a 'swagger' key"),
        ({"swaggerVersion": "1.2", "apis": []}, "Swagger version '1.2' is not supported"),
        ({"swagger": "1.2", "paths": {}}, "Swagger version '1.2' is not supported"),
        ({"openapi": "2.0", "paths": {}}, "OpenAPI version '2.0' is not supported"),
        ({"openapi": "4.0.0", "paths": {}}, "OpenAPI version '4.0.0' is not supported"),
        ({"openapi": "3.0.0", "info": {"title": "x"}}, "no 'paths' mapping"),
        ({"openapi": "3.0.0", "info": {"title": "x"}, "paths": ["/a"]}, "'paths' must be a mapping"),
        (oas3({"/a": {"get": {"parameters": [{"in": "query"}]}}}), "a parameter of GET /a has no 'name' or 'in'"),
        (oas3({"/a": {"get": {"parameters": [{"name": "", "in": "query"}]}}}),
         "operation GET /a cannot be imported: name: String should have at least 1 character"),
        (oas3({"/a": {"get": {"parameters": {"name": "q"}}}}), "'parameters' of GET /a must be a list"),
        ({"openapi": "3.0.0", "info": {"title": "!!!"}, "paths": {}}, "cannot derive a connector id"),
    ],
)
def test_invalid_documents_say_what_is_wrong(document: dict[str, Any], message: str) -> None:
    with pytest.raises(Invalid, match=re.escape(message)) as info:
        import_openapi(document)
    assert info.value.hint


def test_unsupported_versions_name_what_is_supported() -> None:
    with pytest.raises(Invalid) as info:
        import_openapi({"swagger": "1.2", "paths": {}})
    assert info.value.hint == "supported: OpenAPI 3.0, OpenAPI 3.1 and Swagger 2.0."
    with pytest.raises(Invalid, match="must be a mapping, not list"):
        import_openapi([])  # type: ignore[arg-type]


def test_bad_arguments_become_invalid() -> None:
    with pytest.raises(Invalid, match="id") as info:
        import_openapi(oas3({}), connector_id="Bad Id")
    assert info.value.hint is not None and "connector_id" in info.value.hint
    with pytest.raises(Invalid, match="category") as info:
        import_openapi(oas3({}), category="groceries")
    assert info.value.hint is not None and "commerce" in info.value.hint


# ---------------------------------------------------------------------------------------------- loading


def test_load_json_and_yaml_files(tmp_path: Path) -> None:
    spec = SPECS / "travel/amadeus-hotel-search.v3.json"
    document, origin = load_document(str(spec))
    assert document == json.loads(spec.read_text()) and origin == str(spec)
    document, origin = load_document(str(SPECS / "finance/alpaca-trading.yaml"))
    assert document["info"]["title"] == "Trader API" and document["openapi"] == "3.0.0"
    flow = tmp_path / "flow.yaml"  # YAML that looks like JSON at first glance
    flow.write_text("{openapi: 3.0.0, info: {title: Flow, version: '1'}, paths: {}}\n")
    assert load_document(str(flow))[0]["info"]["title"] == "Flow"


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="no API description file at"):
        load_document(str(tmp_path / "missing.yaml"))
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"openapi": "3.0.0",,}')
    with pytest.raises(Invalid, match="is not valid JSON: Expecting property name"):
        load_document(str(bad_json))
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("openapi: 3.0.0\npaths: [unclosed\n")
    with pytest.raises(Invalid, match="neither valid JSON nor valid YAML"):
        load_document(str(bad_yaml))
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(Invalid, match="holds a list, not an API description"):
        load_document(str(listing))
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (MAX_DOCUMENT_BYTES + 1))
    with pytest.raises(TooLarge, match="the limit is 20,971,520"):
        load_document(str(huge))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A stdlib HTTP server on loopback serving tmp_path."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # the client hanging up on an oversized download is expected

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_load_over_http(served: str, tmp_path: Path) -> None:
    (tmp_path / "spotify.yml").write_bytes((SPECS / "media/spotify-web-api.yml").read_bytes())
    (tmp_path / "flights").write_bytes((SPECS / "travel/amadeus-flight-offers-search.v2.json").read_bytes())
    document, origin = load_document(f"{served}/spotify.yml", timeout_s=10)
    assert origin == f"{served}/spotify.yml" and document["openapi"] == "3.0.3"
    manifest = import_openapi(document, source=origin, category="media")
    assert len(manifest.operations) == 97 and manifest.source["origin"] == origin
    document, _ = load_document(f"{served}/flights")  # no extension, no JSON content type: sniffed
    assert document["info"]["title"] == "Flight Offers Search"
    with pytest.raises(Invalid, match=r"HTTP 404 File not found"):
        load_document(f"{served}/nope.yaml")
    (tmp_path / "huge.yaml").write_bytes(b"#" * (MAX_DOCUMENT_BYTES + 1))
    with pytest.raises(TooLarge, match="the limit is 20,971,520"):
        load_document(f"{served}/huge.yaml")


def test_load_from_an_unreachable_host() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(Invalid, match=f"could not fetch http://127.0.0.1:{port}/api.json"):
            load_document(f"http://127.0.0.1:{port}/api.json", timeout_s=5)


def test_a_document_nested_hundreds_of_levels_is_refused_not_a_crash() -> None:
    from oshal.connectors.importer._refs import MAX_DOCUMENT_DEPTH, plain_json

    deep: dict[str, object] = {}
    node = deep
    for _ in range(600):  # parses fine, but deeper than Python's recursion allows a naive walk to go safely
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    with pytest.raises(Invalid, match=f"more than {MAX_DOCUMENT_DEPTH} levels"):
        plain_json(deep)
    assert plain_json({"a": {"b": [1, 2]}}) == {"a": {"b": [1, 2]}}
