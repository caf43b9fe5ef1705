"""A bot configured for a provider whose optional SDK is absent fails with the extra to install."""

from __future__ import annotations

import sys

import pytest

from oshal.bots.harnesses import build_harness
from oshal.bots.manifest import BotManifest
from oshal.errors import ConfigError


@pytest.mark.parametrize(("harness", "module"), [("openai", "openai"), ("anthropic", "anthropic")])
def test_missing_provider_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch, harness: str, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what `import openai` sees when the extra is not installed
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    with pytest.raises(ConfigError) as caught:
        build_harness(BotManifest(name="writer", harness=harness, model="m"))  # type: ignore[arg-type]
    assert f"pip install 'oshal[{harness}]'" in (caught.value.hint or "")
    assert "writer" in caught.value.message
