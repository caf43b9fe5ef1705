"""Catalog import: turn published API descriptions (OpenAPI 3.x, Swagger 2.0) into draft connector manifests."""

from oshal.connectors.importer.openapi import (
    MAX_DOCUMENT_BYTES,
    document_sha256,
    import_openapi,
    load_document,
    money_effects,
    parse_document,
)

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "document_sha256",
    "import_openapi",
    "load_document",
    "money_effects",
    "parse_document",
]
