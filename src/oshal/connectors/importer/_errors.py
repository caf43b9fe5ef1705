"""How both importers explain a manifest that does not validate."""

from __future__ import annotations

from typing import get_args

from pydantic import ValidationError

from oshal.connectors.manifest import CONNECTOR_ID_PATTERN, Category


def errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}" for error in exc.errors()[:5]
    )


def manifest_hint(exc: ValidationError, source: str) -> str:
    fields = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
    if "id" in fields:
        return f"pass connector_id= matching {CONNECTOR_ID_PATTERN}."
    if "category" in fields:
        return f"category must be one of {', '.join(get_args(Category))}."
    if "publisher" in fields:
        return "publisher must be 1-100 characters."
    return f"fix {source} (or the arguments) at the field named."
