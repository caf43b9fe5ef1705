"""Built-in workflow definitions: the YAML files shipped in ``workflows/``, registered at start-up.

A definition is immutable once registered: the same name and version with different content is refused, so a
run pinned to a version always finds exactly the definition it started on. Publish a change as a new version.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from oshal.errors import ConfigError, Invalid
from oshal.store import workflows as repo
from oshal.types import new_id
from oshal.workflows.definition import WorkflowDefinition, canonical_json, load_definition_text


def load_builtin(folder: Path) -> list[WorkflowDefinition]:
    if not folder.is_dir():
        raise ConfigError(f"workflow folder {folder} does not exist", hint="set OSHAL_WORKFLOWS_DIR")
    definitions = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            definitions.append(load_definition_text(path.read_text(), source=str(path)))
        except Invalid as e:
            raise ConfigError(e.message, hint=e.hint) from e
    names = [d.name for d in definitions]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"workflow names repeat in {folder}: {', '.join(repeated)}")
    return definitions


def register_builtin(owner_url: str, definitions: list[WorkflowDefinition]) -> list[str]:
    """Insert definitions not registered yet; returns "name@version" of each one added."""
    added = []
    with psycopg.connect(owner_url) as conn:
        for definition in definitions:
            digest = repo.builtin_digest(conn, definition.name, definition.version)
            if digest is not None:
                if digest != definition.digest():
                    raise ConfigError(
                        f"built-in workflow {definition.name} version {definition.version} changed since it was "
                        "registered", hint="definitions are immutable: bump its version to publish the change")
                continue
            repo.insert_builtin(conn, new_id(), definition.name, definition.version,
                                canonical_json(definition.to_document()), definition.digest())
            added.append(f"{definition.name}@{definition.version}")
    return added
