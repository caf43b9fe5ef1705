"""Prices and cost: effective dating, wildcards, provider-reported cost, exact micro-dollar arithmetic."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oshal.errors import ConfigError
from oshal.ledger import Price, Priced, PriceTable, load_price_file, price_call
from oshal.mesh.envelopes import CallUsage

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)


def call(provider: str = "p", model: str = "m", inp: int = 10, out: int = 10, cached: int = 0,
         written: int = 0, reported: int | None = None) -> CallUsage:
    return CallUsage("ph:0:0", provider, model, inp, out, cached, written, reported)


@pytest.fixture(scope="module")
def bundled() -> PriceTable:
    return PriceTable(load_price_file())


# ------------------------------------------------------------------------------------- bundled prices


def test_gpt_4o_mini_with_cached_tokens_costs_an_exact_number_of_micro_dollars(bundled: PriceTable) -> None:
    # prices.yaml: input 150000, cached_read 75000, output 600000 micro-USD per million tokens.
    # 1234 x 150000 + 4096 x 75000 + 321 x 600000 = 185,100,000 + 307,200,000 + 192,600,000
    #   = 684,900,000 / 1,000,000 = 684.9 -> 685
    usage = call("openai", "gpt-4o-mini", inp=1234, out=321, cached=4096)
    assert price_call(bundled, usage, dt.datetime(2025, 1, 1, tzinfo=dt.UTC)) == Priced(685, "estimated")


def test_claude_haiku_prices_cache_writes(bundled: PriceTable) -> None:
    # 1000 x 0.8 + 200 x 4 + 5000 x 0.08 + 700 x 1 = 800 + 800 + 400 + 700 = 2700 micro-dollars
    usage = call("anthropic", "claude-3-5-haiku-latest", inp=1000, out=200, cached=5000, written=700)
    assert price_call(bundled, usage, dt.datetime(2025, 2, 1, tzinfo=dt.UTC)) == Priced(2700, "estimated")


def test_the_bundled_row_does_not_apply_before_its_effective_date(bundled: PriceTable) -> None:
    usage = call("openai", "gpt-4o-mini", inp=1_000_000, out=0)
    just_before = dt.datetime(2024, 7, 18, tzinfo=dt.UTC) - MICROSECOND
    assert price_call(bundled, usage, just_before) == Priced(0, "unpriced")
    assert price_call(bundled, usage, just_before + MICROSECOND) == Priced(150_000, "estimated")


def test_deterministic_models_are_priced_at_zero_by_the_wildcard(bundled: PriceTable) -> None:
    usage = call("deterministic", "deterministic-echo", 500, 500)
    assert price_call(bundled, usage, T0) == Priced(0, "estimated")


def test_the_bundled_file_has_the_documented_rows(bundled: PriceTable) -> None:
    row = bundled.lookup("openai", "gpt-4o-mini", T0)
    assert row == Price("openai", "gpt-4o-mini", dt.datetime(2024, 7, 18, tzinfo=dt.UTC), input=150_000,
                        output=600_000, cached_read=75_000, cache_write=0)
    assert len(bundled) == 7


# --------------------------------------------------------------------------------------- the rules


def test_a_price_change_applies_only_at_and_after_its_effective_time() -> None:
    table = PriceTable([
        Price("p", "m", T0, input=1_000_000, output=2_000_000),
        Price("p", "m", T1, input=3_000_000, output=4_000_000),
    ])
    usage = call(inp=10, out=10)

    assert price_call(table, usage, T0 - MICROSECOND) == Priced(0, "unpriced")
    assert price_call(table, usage, T0) == Priced(30, "estimated")
    assert price_call(table, usage, T1 - MICROSECOND) == Priced(30, "estimated")
    assert price_call(table, usage, T1) == Priced(70, "estimated")
    assert price_call(table, usage, T1 + dt.timedelta(days=365)) == Priced(70, "estimated")


def test_rows_given_out_of_order_are_still_effective_dated() -> None:
    table = PriceTable([Price("p", "m", T1, input=3_000_000, output=0),
                        Price("p", "m", T0, input=1_000_000, output=0)])
    assert price_call(table, call(inp=1, out=0), T0) == Priced(1, "estimated")
    assert price_call(table, call(inp=1, out=0), T1) == Priced(3, "estimated")


def test_a_later_row_with_the_same_key_overrides_an_earlier_one() -> None:
    # Database rows are merged after the file's: same provider, model and effective_from -> the later wins.
    table = PriceTable([Price("p", "m", T0, input=1_000_000, output=0),
                        Price("p", "m", T0, input=9_000_000, output=0)])
    assert price_call(table, call(inp=2, out=0), T1) == Priced(18, "estimated")
    assert len(table) == 1


def test_the_wildcard_model_prices_models_without_a_row_of_their_own() -> None:
    table = PriceTable([
        Price("p", "*", T0, input=500_000, output=500_000),
        Price("p", "special", T1, input=5_000_000, output=5_000_000),
    ])
    assert price_call(table, call(model="anything", inp=4, out=6), T1) == Priced(5, "estimated")
    assert price_call(table, call(model="special", inp=4, out=6), T1) == Priced(50, "estimated")
    # before its own row starts, a model falls back to the provider wildcard
    assert price_call(table, call(model="special", inp=4, out=6), T0) == Priced(5, "estimated")
    # the wildcard is per provider
    assert price_call(table, call(provider="q", model="anything"), T1) == Priced(0, "unpriced")


def test_a_provider_reported_cost_wins() -> None:
    table = PriceTable([Price("p", "m", T0, input=1_000_000, output=1_000_000)])
    assert price_call(table, call(inp=10, out=10, reported=1234), T1) == Priced(1234, "provider")
    assert price_call(table, call(inp=10, out=10, reported=0), T1) == Priced(0, "provider")
    assert price_call(table, call(model="unknown", reported=77), T1) == Priced(77, "provider")


def test_an_unknown_model_is_unpriced_at_zero(bundled: PriceTable) -> None:
    usage = call("openai", "gpt-9-ultra", 1_000_000, 1_000_000)
    assert price_call(bundled, usage, T1) == Priced(0, "unpriced")
    assert price_call(bundled, call("mistral", "large", 1, 1), T1) == Priced(0, "unpriced")


@pytest.mark.parametrize(("per_mtok", "tokens", "expected"), [
    (500_000, 1, 1),      # 0.5 -> 1 (half up)
    (499_999, 1, 0),      # 0.499999 -> 0
    (1_500_000, 1, 2),    # 1.5 -> 2
    (2_500_000, 1, 3),    # 2.5 -> 3 (banker's rounding would give 2)
    (2_499_999, 1, 2),
    (150_000, 3, 0),      # 0.45 -> 0
    (150_000, 4, 1),      # 0.6 -> 1
    (150_000, 10, 2),     # 1.5 -> 2
    (0, 1_000_000, 0),
])
def test_rounding_is_half_up_to_whole_micro_dollars(per_mtok: int, tokens: int, expected: int) -> None:
    table = PriceTable([Price("p", "m", T0, input=per_mtok, output=0)])
    assert price_call(table, call(inp=tokens, out=0), T1) == Priced(expected, "estimated")


def test_rounding_applies_once_to_the_sum_not_per_component() -> None:
    # 0.4 + 0.4 = 0.8 -> 1, where rounding each part first would give 0
    table = PriceTable([Price("p", "m", T0, input=400_000, output=400_000)])
    assert price_call(table, call(inp=1, out=1), T1) == Priced(1, "estimated")


# ---------------------------------------------------------------------------------------- property

PRICES = st.builds(Price, st.just("p"), st.just("m"), st.just(T0), st.integers(0, 100_000_000),
                   st.integers(0, 100_000_000), st.integers(0, 100_000_000), st.integers(0, 100_000_000))
TOKENS = st.integers(0, 10_000_000)
FIELDS = ("input_tokens", "output_tokens", "cached_read_tokens", "cache_write_tokens")


@given(price=PRICES, counts=st.tuples(TOKENS, TOKENS, TOKENS, TOKENS), field=st.sampled_from(FIELDS),
       more=st.integers(0, 10_000_000))
def test_cost_is_never_negative_and_monotone_in_every_token_count(
        price: Price, counts: tuple[int, int, int, int], field: str, more: int) -> None:
    table = PriceTable([price])
    base = call(inp=counts[0], out=counts[1], cached=counts[2], written=counts[3])
    bigger = dataclasses.replace(base, **{field: getattr(base, field) + more})

    low, high = price_call(table, base, T1), price_call(table, bigger, T1)
    assert low.source == high.source == "estimated"
    assert 0 <= low.cost_micros <= high.cost_micros
    exact = (counts[0] * price.input + counts[1] * price.output + counts[2] * price.cached_read
             + counts[3] * price.cache_write)
    assert abs(low.cost_micros * 1_000_000 - exact) <= 500_000  # within half a micro-dollar


# ------------------------------------------------------------------------------------- price files


def test_a_custom_price_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "prices:\n"
        "  - {provider: vllm, model: llama3.1, effective_from: 2025-05-01, input: 10, output: 20}\n"
        "  - {provider: vllm, model: '*', effective_from: '2025-05-01T06:00:00+02:00', input: 1, output: 2,\n"
        "     cached_read: 3, cache_write: 4}\n"
    )
    assert load_price_file(path) == [
        Price("vllm", "llama3.1", dt.datetime(2025, 5, 1, tzinfo=dt.UTC), 10, 20, 0, 0),
        Price("vllm", "*", dt.datetime(2025, 5, 1, 4, 0, tzinfo=dt.UTC), 1, 2, 3, 4),
    ]


def test_an_empty_price_file_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("")
    assert load_price_file(path) == []


@pytest.mark.parametrize("text", [
    "prices:\n  - {provider: openai, model: m, effective_from: 2025-01-01, output: 1}\n",  # no input
    "prices:\n  - {provider: openai, model: m, effective_from: 2025-01-01, input: cheap, output: 1}\n",
    "prices:\n  - {provider: openai, model: m, effective_from: someday, input: 1, output: 1}\n",
    "prices:\n  - just a string\n",
    "prices: 5\n",
    "prices: [unclosed\n",
    "- provider: openai\n",  # a list at the top level, not a mapping
])
def test_a_bad_price_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_price_file(path)
    assert caught.value.message.startswith(f"price file {path} is invalid: ")
    assert caught.value.hint == "each row needs provider, model, effective_from, input, output"


def test_a_missing_price_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_price_file(path)
    assert caught.value.message.startswith(f"price file {path} cannot be read: ")
    assert caught.value.hint == "check the path, or leave it unset to use the bundled prices"
