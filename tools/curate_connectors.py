"""Build the curated connectors shipped in ``connectors/`` from the real API descriptions, and sign them.

Each is imported from ``../shared/data/openapi``, cut down to the handful of read-only operations worth a bot's time,
fixed where the description falls short (Amadeus declares no auth; its API uses OAuth2 client credentials), and
signed by the ``oshal`` publisher. The private key is never committed: pass it with ``--key``; the public key
ships as ``connectors/oshal.pub`` and ``oshal up`` trusts it.

    python tools/curate_connectors.py --key ~/secure/oshal.key
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from oshal.connectors.importer import import_openapi, load_document
from oshal.connectors.manifest import AuthScheme, ConnectorManifest
from oshal.connectors.signing import sign_manifest

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO.parent / "shared" / "data" / "openapi"
OUT = REPO / "connectors"
PUBLISHER = "oshal"

# (connector id, category, [(spec file, path prefix)], operations to enable)
CURATED: list[tuple[str, str, list[tuple[str, str]], list[str]]] = [
    ("bigcommerce-catalog", "commerce", [("commerce/bigcommerce-catalog.v3.yml", "")],
     ["getProducts", "getProductById", "getProductImages", "getVariantsByProductId", "getOptions"]),
    ("amadeus-travel", "travel", [("travel/amadeus-flight-offers-search.v2.json", "/v2"),
                                  ("travel/amadeus-airport-city-search.v1.json", "/v1")],
     ["getFlightOffers", "getAirportCitySearch", "getAirportCity"]),
    ("spotify", "media", [("media/spotify-web-api.yml", "")],
     ["search", "get-an-album", "get-an-albums-tracks", "get-an-artist", "get-an-artists-top-tracks"]),
    ("alpaca-market-data", "finance", [("finance/alpaca-market-data.yaml", "")],
     ["getBarsForStockSymbol", "getLatestTradeForStockSymbol", "getLatestQuoteForStockSymbol",
      "getSnapshotForStockSymbol"]),
]
AMADEUS_AUTH = AuthScheme(kind="oauth2_client_credentials",
                          token_url="https://test.api.amadeus.com/v1/security/oauth2/token")  # noqa: S106 - a URL


def curate(connector_id: str, category: str, sources: list[tuple[str, str]], enable: list[str]) -> ConnectorManifest:
    parts = []
    for spec, prefix in sources:
        document, _ = load_document(str(SPECS / spec))
        manifest = import_openapi(document, connector_id=connector_id, publisher=PUBLISHER, category=category,
                                  source=f"shared/data/openapi/{spec}")
        parts.append((manifest, prefix))
    first = parts[0][0]
    operations = []
    for manifest, prefix in parts:  # only the chosen operations: a curated connector stays small and reviewable
        operations.extend(op.model_copy(update={"path": prefix + op.path, "enabled": True})
                          for op in manifest.operations if op.name in enable)
    missing = set(enable) - {op.name for op in operations}
    if missing:
        raise SystemExit(f"{connector_id}: no operation(s) {sorted(missing)}")
    update: dict[str, object] = {"operations": tuple(operations)}
    if connector_id == "amadeus-travel":
        update |= {"base_url": "https://test.api.amadeus.com", "auth": (AMADEUS_AUTH,),
                   "title": "Amadeus for Developers (flight offers, airport and city search)"}
    return first.model_copy(update=update)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--key", type=Path, required=True, help="the oshal publisher's private key (PEM)")
    args = parser.parse_args()
    pem = args.key.read_bytes()
    OUT.mkdir(exist_ok=True)
    for connector_id, category, sources, enable in CURATED:
        manifest = curate(connector_id, category, sources, enable)
        path = OUT / f"{connector_id}.json"
        path.write_text(json.dumps(manifest.model_dump(mode="json", by_alias=True), indent=1, sort_keys=True) + "\n")
        signature = sign_manifest(manifest, pem, PUBLISHER)
        (OUT / f"{connector_id}.json.sig.json").write_text(signature.to_json() + "\n")
        print(f"{connector_id}: {len(manifest.operations)} operations, digest {manifest.digest()[:16]}")


if __name__ == "__main__":
    main()
