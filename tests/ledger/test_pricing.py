"""Prices and cost: effective dating, wildcards, provider-reported cost, replays, a price per usage type
(uncached and cached input, 5-minute and 1-hour cache writes, output, reasoning, a per-request fee) and
exact micro-dollar arithmetic."""

from __future__ import annotations

import dataclasses
import datetime as dt
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oshal.errors import ConfigError
from oshal.ledger import (
    Price,
    Priced,
    PriceTable,
    UsageCounts,
    load_price_file,
    price_call,
    price_usage,
    scaled_cost,
    usage_counts,
)
from oshal.mesh.envelopes import CallUsage

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)
AFTER_CUT = dt.datetime(2025, 6, 10, tzinfo=dt.UTC)


def call(provider: str = "p", model: str = "m", inp: int = 10, out: int = 10, cached: int = 0,
         written: int = 0, reported: int | None = None, reasoning: int = 0, replayed: bool = False) -> CallUsage:
    return CallUsage("ph:0:0", provider, model, inp, out, cached, written, reported, reasoning_tokens=reasoning,
                     replayed=replayed)


def est(micros: int) -> Priced:
    """An estimate from the table: charged and computed are the same figure."""
    return Priced(micros, "estimated", micros)


@pytest.fixture(scope="module")
def bundled() -> PriceTable:
    return PriceTable(load_price_file())


# ------------------------------------------------------------------------------------- bundled prices


def test_gpt_4o_mini_with_cached_tokens_costs_an_exact_number_of_micro_dollars(bundled: PriceTable) -> None:
    # prices.yaml: input 150000, cached_read 75000, output 600000 micro-USD per million tokens.
    # 1234 x 150000 + 4096 x 75000 + 321 x 600000 = 185,100,000 + 307,200,000 + 192,600,000
    #   = 684,900,000 / 1,000,000 = 684.9 -> 685
    usage = call("openai", "gpt-4o-mini", inp=1234, out=321, cached=4096)
    assert price_call(bundled, usage, dt.datetime(2025, 1, 1, tzinfo=dt.UTC)) == est(685)


def test_claude_haiku_prices_cache_writes(bundled: PriceTable) -> None:
    # 1000 x 0.8 + 200 x 4 + 5000 x 0.08 + 700 x 1 = 800 + 800 + 400 + 700 = 2700 micro-dollars
    usage = call("anthropic", "claude-3-5-haiku-latest", inp=1000, out=200, cached=5000, written=700)
    assert price_call(bundled, usage, dt.datetime(2025, 2, 1, tzinfo=dt.UTC)) == est(2700)


def test_the_bundled_row_does_not_apply_before_its_effective_date(bundled: PriceTable) -> None:
    usage = call("openai", "gpt-4o-mini", inp=1_000_000, out=0)
    just_before = dt.datetime(2024, 7, 18, tzinfo=dt.UTC) - MICROSECOND
    assert price_call(bundled, usage, just_before) == Priced(0, "unpriced")
    assert price_call(bundled, usage, just_before + MICROSECOND) == est(150_000)


def test_deterministic_models_are_priced_at_zero_by_the_wildcard(bundled: PriceTable) -> None:
    usage = call("deterministic", "deterministic-echo", 500, 500)
    assert price_call(bundled, usage, T0) == est(0)


def test_the_bundled_file_has_the_documented_rows(bundled: PriceTable) -> None:
    row = bundled.lookup("openai", "gpt-4o-mini", T0)
    assert row == Price("openai", "gpt-4o-mini", dt.datetime(2024, 7, 18, tzinfo=dt.UTC), input=150_000,
                        output=600_000, cached_read=75_000, cache_write=0)
    assert bundled.lookup("anthropic", "claude-sonnet-4-0", T1) is None  # not before 2025-05-22
    assert bundled.lookup("anthropic", "claude-sonnet-4-0", AFTER_CUT) == Price(
        "anthropic", "claude-sonnet-4-0", dt.datetime(2025, 5, 22, tzinfo=dt.UTC), input=3_000_000,
        output=15_000_000, cached_read=300_000, cache_write=3_750_000, cache_write_1h=6_000_000)
    assert len(bundled) == 22


def test_every_bundled_anthropic_row_keeps_the_published_cache_multipliers(bundled: PriceTable) -> None:
    # Anthropic prices the cache off base input: reads 0.1x, 5-minute writes 1.25x, 1-hour writes 2x.
    rows = [p for p in load_price_file() if p.provider == "anthropic"]
    assert rows
    for p in rows:
        assert (p.cached_read * 10, p.cache_write * 4, p.cache_write_1h) == (p.input, p.input * 5, 2 * p.input), p


def test_o3_is_priced_at_launch_and_after_the_june_2025_price_cut(bundled: PriceTable) -> None:
    # 1000 uncached, 1000 cached, 500 visible output + 1500 reasoning (billed as output)
    usage = call("openai", "o3", inp=1000, out=2000, cached=1000, reasoning=1500)
    # launch: 1000 x 10 + 1000 x 2.5 + 2000 x 40 = 10,000 + 2,500 + 80,000 = 92,500 micro-dollars
    assert price_call(bundled, usage, AFTER_CUT - dt.timedelta(days=1)) == est(92_500)
    # from 2025-06-10: 1000 x 2 + 1000 x 0.5 + 2000 x 8 = 2,000 + 500 + 16,000 = 18,500 micro-dollars
    assert price_call(bundled, usage, AFTER_CUT) == est(18_500)


def test_o4_mini_bills_reasoning_tokens_at_the_output_rate(bundled: PriceTable) -> None:
    # 100 x 1.1 + 0 + 1000 x 4.4 = 110 + 4,400 = 4,510, however much of the output was reasoning
    for reasoning in (0, 640, 1000):
        usage = call("openai", "o4-mini", inp=100, out=1000, reasoning=reasoning)
        assert price_call(bundled, usage, AFTER_CUT) == est(4_510)


# --------------------------------------------------------------------------------------- the rules


def test_a_price_change_applies_only_at_and_after_its_effective_time() -> None:
    table = PriceTable([
        Price("p", "m", T0, input=1_000_000, output=2_000_000),
        Price("p", "m", T1, input=3_000_000, output=4_000_000),
    ])
    usage = call(inp=10, out=10)

    assert price_call(table, usage, T0 - MICROSECOND) == Priced(0, "unpriced")
    assert price_call(table, usage, T0) == est(30)
    assert price_call(table, usage, T1 - MICROSECOND) == est(30)
    assert price_call(table, usage, T1) == est(70)
    assert price_call(table, usage, T1 + dt.timedelta(days=365)) == est(70)


def test_rows_given_out_of_order_are_still_effective_dated() -> None:
    table = PriceTable([Price("p", "m", T1, input=3_000_000, output=0),
                        Price("p", "m", T0, input=1_000_000, output=0)])
    assert price_call(table, call(inp=1, out=0), T0) == est(1)
    assert price_call(table, call(inp=1, out=0), T1) == est(3)


def test_a_later_row_with_the_same_key_overrides_an_earlier_one() -> None:
    # Database rows are merged after the file's: same provider, model and effective_from -> the later wins.
    table = PriceTable([Price("p", "m", T0, input=1_000_000, output=0),
                        Price("p", "m", T0, input=9_000_000, output=0)])
    assert price_call(table, call(inp=2, out=0), T1) == est(18)
    assert len(table) == 1


def test_the_wildcard_model_prices_models_without_a_row_of_their_own() -> None:
    table = PriceTable([
        Price("p", "*", T0, input=500_000, output=500_000),
        Price("p", "special", T1, input=5_000_000, output=5_000_000),
    ])
    assert price_call(table, call(model="anything", inp=4, out=6), T1) == est(5)
    assert price_call(table, call(model="special", inp=4, out=6), T1) == est(50)
    # before its own row starts, a model falls back to the provider wildcard
    assert price_call(table, call(model="special", inp=4, out=6), T0) == est(5)
    # the wildcard is per provider
    assert price_call(table, call(provider="q", model="anything"), T1) == Priced(0, "unpriced")


def test_a_provider_reported_cost_wins_and_the_computed_cost_is_kept_beside_it() -> None:
    table = PriceTable([Price("p", "m", T0, input=1_000_000, output=1_000_000)])
    # the table says 10 + 10 = 20 micro-dollars; the provider's own figure is what is charged
    assert price_call(table, call(inp=10, out=10, reported=1234), T1) == Priced(1234, "provider", 20)
    assert price_call(table, call(inp=10, out=10, reported=0), T1) == Priced(0, "provider", 20)
    assert price_call(table, call(model="unknown", reported=77), T1) == Priced(77, "provider", None)


def test_a_replayed_call_costs_nothing_whatever_it_reports() -> None:
    table = PriceTable([Price("p", "m", T0, input=1_000_000, output=1_000_000, request=5)])
    assert price_call(table, call(inp=10, out=10, replayed=True), T1) == Priced(0, "replay", 0)
    assert price_call(table, call(inp=10, out=10, reported=99, replayed=True), T1) == Priced(0, "replay", 0)
    assert price_call(table, call(model="unknown", replayed=True), T1) == Priced(0, "replay", 0)


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
    assert price_call(table, call(inp=tokens, out=0), T1) == est(expected)


def test_rounding_applies_once_to_the_sum_not_per_component() -> None:
    # 0.4 + 0.4 = 0.8 -> 1, where rounding each part first would give 0
    table = PriceTable([Price("p", "m", T0, input=400_000, output=400_000)])
    assert price_call(table, call(inp=1, out=1), T1) == est(1)


# ---------------------------------------------------------------------------------------- property

PER_MTOK = st.integers(0, 100_000_000)
PRICES = st.builds(Price, st.just("p"), st.just("m"), st.just(T0), PER_MTOK, PER_MTOK, PER_MTOK, PER_MTOK,
                   reasoning=st.none() | PER_MTOK, request=st.integers(0, 100_000),
                   cache_write_1h=st.none() | PER_MTOK)
TOKENS = st.integers(0, 10_000_000)
# Each usage type on its own: how many tokens of it a call has, and the token fields that grow with it
# (a reasoning token is also an output token; a one-hour cache write is also a cache write).
KINDS: dict[str, tuple[str, ...]] = {
    "input": ("input_tokens",),
    "cached_read": ("cached_read_tokens",),
    "cache_write_5m": ("cache_write_tokens",),
    "cache_write_1h": ("cache_write_tokens", "cache_write_1h_tokens"),
    "visible_output": ("output_tokens",),
    "reasoning": ("output_tokens", "reasoning_tokens"),
}


def usage_of(amounts: dict[str, int]) -> UsageCounts:
    totals = {f.name: 0 for f in dataclasses.fields(UsageCounts)}
    for kind, n in amounts.items():
        for name in KINDS[kind]:
            totals[name] += n
    return UsageCounts(**totals)


AMOUNTS = st.fixed_dictionaries({kind: TOKENS for kind in KINDS})


def exact_usd(price: Price, amounts: dict[str, int]) -> Fraction:
    """The cost by the documented rule, in dollars, without rounding: each type at its own rate."""
    rates = {"input": price.input, "cached_read": price.cached_read, "cache_write_5m": price.cache_write,
             "cache_write_1h": price.cache_write if price.cache_write_1h is None else price.cache_write_1h,
             "visible_output": price.output,
             "reasoning": price.output if price.reasoning is None else price.reasoning}
    per_token = {kind: Fraction(rate, 10**6 * 10**6) for kind, rate in rates.items()}  # micros/Mtok -> USD/token
    return sum((amounts[kind] * per_token[kind] for kind in KINDS), Fraction(0)) + Fraction(price.request, 10**6)


@given(price=PRICES, amounts=AMOUNTS, kind=st.sampled_from(sorted(KINDS)), more=st.integers(1, 10_000_000))
def test_cost_is_never_negative_and_monotone_in_every_usage_type(
        price: Price, amounts: dict[str, int], kind: str, more: int) -> None:
    low = price_usage(price, usage_of(amounts))
    high = price_usage(price, usage_of(amounts | {kind: amounts[kind] + more}))
    assert price.request <= low <= high


@given(price=PRICES, amounts=AMOUNTS)
def test_cost_is_the_exact_sum_of_its_parts_rounded_once_half_up(price: Price, amounts: dict[str, int]) -> None:
    cost = price_usage(price, usage_of(amounts))
    exact = exact_usd(price, amounts) * 10**6  # micro-dollars
    assert -Fraction(1, 2) < cost - exact <= Fraction(1, 2)  # one rounding, half up
    # each part priced alone (with no request fee) sums to the whole within the rounding of the parts
    free = dataclasses.replace(price, request=0)
    parts = [price_usage(free, usage_of({kind: amounts[kind]})) for kind in KINDS]
    assert abs(cost - price.request - sum(parts)) <= (len(parts) + 1) // 2


@given(price=PRICES, amounts=AMOUNTS)
def test_the_request_fee_is_charged_exactly_once_per_call(price: Price, amounts: dict[str, int]) -> None:
    free = dataclasses.replace(price, request=0)
    assert price_usage(price, usage_of(amounts)) == price_usage(free, usage_of(amounts)) + price.request
    assert price_usage(price, UsageCounts(0, 0)) == price.request


@given(price=PRICES, amounts=AMOUNTS)
def test_reasoning_defaults_to_the_output_price(price: Price, amounts: dict[str, int]) -> None:
    unset = dataclasses.replace(price, reasoning=None)
    as_output = usage_of(amounts | {"visible_output": amounts["visible_output"] + amounts["reasoning"],
                                    "reasoning": 0})
    assert price_usage(unset, usage_of(amounts)) == price_usage(unset, as_output)
    assert price_usage(unset, usage_of(amounts)) == \
        price_usage(dataclasses.replace(price, reasoning=price.output), usage_of(amounts))


@given(price=PRICES, amounts=AMOUNTS)
def test_one_hour_cache_writes_default_to_the_cache_write_price(price: Price, amounts: dict[str, int]) -> None:
    unset = dataclasses.replace(price, cache_write_1h=None)
    as_5m = usage_of(amounts | {"cache_write_5m": amounts["cache_write_5m"] + amounts["cache_write_1h"],
                                "cache_write_1h": 0})
    assert price_usage(unset, usage_of(amounts)) == price_usage(unset, as_5m)


@given(price=PRICES, counts=st.tuples(TOKENS, TOKENS, TOKENS, TOKENS, TOKENS),
       field=st.sampled_from(("input_tokens", "output_tokens", "cached_read_tokens", "cache_write_tokens",
                              "reasoning")),
       more=st.integers(0, 10_000_000))
def test_price_call_is_monotone_in_every_call_usage_count(
        price: Price, counts: tuple[int, int, int, int, int], field: str, more: int) -> None:
    table = PriceTable([price])
    inp, visible, cached, written, reasoning = counts
    base = call(inp=inp, out=visible + reasoning, cached=cached, written=written, reasoning=reasoning)
    grown = ({"output_tokens": base.output_tokens + more, "reasoning_tokens": reasoning + more}
             if field == "reasoning" else {field: getattr(base, field) + more})
    bigger = dataclasses.replace(base, **grown)

    low, high = price_call(table, base, T1), price_call(table, bigger, T1)
    assert low.source == high.source == "estimated"
    assert low.computed_micros == low.cost_micros and high.computed_micros == high.cost_micros
    assert 0 <= low.cost_micros <= high.cost_micros
    amounts = {"input": inp, "cached_read": cached, "cache_write_5m": written, "cache_write_1h": 0,
               "visible_output": visible, "reasoning": reasoning}
    assert abs(low.cost_micros - exact_usd(price, amounts) * 10**6) <= Fraction(1, 2)


# ------------------------------------------------------------------------------------ the usage types


def test_each_usage_type_is_priced_at_its_own_rate() -> None:
    price = Price("p", "m", T0, input=1_000_000, output=2_000_000, cached_read=3_000_000, cache_write=4_000_000,
                  reasoning=5_000_000, request=7, cache_write_1h=6_000_000)
    # $1..$6 per Mtok are 1..6 micro-dollars a token; the request fee is 7 micro-dollars
    usage = UsageCounts(input_tokens=1, output_tokens=10, reasoning_tokens=4, cached_read_tokens=100,
                        cache_write_tokens=1000, cache_write_1h_tokens=400)
    # 1 x 1 + (10 - 4) x 2 + 4 x 5 + 100 x 3 + (1000 - 400) x 4 + 400 x 6 + 7
    #   = 1 + 12 + 20 + 300 + 2400 + 2400 + 7 = 5140
    assert price_usage(price, usage) == 5140
    assert scaled_cost(price, usage) == (5140 - 7) * 1_000_000


def test_a_cheaper_reasoning_price_lowers_the_cost_of_reasoning_only() -> None:
    table = PriceTable([Price("p", "m", T0, input=0, output=10_000_000, reasoning=1_000_000)])
    # 100 output tokens of which 60 reasoning: 40 x 10 + 60 x 1 = 460 micro-dollars
    assert price_call(table, call(inp=0, out=100, reasoning=60), T1) == est(460)
    assert price_call(table, call(inp=0, out=100), T1) == est(1000)


def test_the_request_fee_is_charged_even_for_a_call_with_no_tokens() -> None:
    table = PriceTable([Price("p", "m", T0, input=1_000_000, output=1_000_000, request=2500)])
    assert price_call(table, call(inp=0, out=0), T1) == est(2500)
    assert price_call(table, call(inp=3, out=4), T1) == est(2507)


def test_an_impossible_call_usage_is_refused_rather_than_priced() -> None:
    table = PriceTable([Price("p", "m", T0, input=1_000_000, output=1_000_000)])
    with pytest.raises(ValueError, match="reasoning is part of output"):
        price_call(table, call(inp=1, out=5, reasoning=6), T1)
    with pytest.raises(ValueError, match="input_tokens must be a non-negative integer"):
        price_call(table, call(inp=-1, out=5), T1)


def test_usage_counts_mirror_the_call_usage() -> None:
    usage = call(inp=1, out=5, cached=2, written=3, reasoning=4)
    assert usage_counts(usage) == UsageCounts(input_tokens=1, output_tokens=5, reasoning_tokens=4,
                                              cached_read_tokens=2, cache_write_tokens=3)


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


def test_a_price_file_row_may_price_reasoning_one_hour_cache_writes_and_requests(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "prices:\n"
        "  - {provider: p, model: m, effective_from: 2025-05-01, input: 10, output: 20, cached_read: 1,\n"
        "     cache_write: 12, cache_write_1h: 19, reasoning: 30, request: 400}\n"
        "  - {provider: p, model: plain, effective_from: 2025-05-01, input: '10', output: 20}\n"
    )
    at = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    assert load_price_file(path) == [
        Price("p", "m", at, 10, 20, 1, 12, reasoning=30, request=400, cache_write_1h=19),
        Price("p", "plain", at, 10, 20, 0, 0, reasoning=None, request=0, cache_write_1h=None),
    ]


def test_an_empty_price_file_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("")
    assert load_price_file(path) == []


@pytest.mark.parametrize("text", [
    "prices:\n  - {provider: openai, model: m, effective_from: 2025-01-01, output: 1}\n",  # no input
    "prices:\n  - {provider: openai, model: m, effective_from: 2025-01-01, input: cheap, output: 1}\n",
    "prices:\n  - {provider: openai, model: m, effective_from: someday, input: 1, output: 1}\n",
    "prices:\n  - {provider: openai, model: m, effective_from: 2025-01-01, input: -1, output: 1}\n",
    "prices:\n  - {provider: openai, model: m, effective_from: 2025-01-01, input: 0.15, output: 1}\n",  # dollars?
    "prices:\n  - {provider: openai, model: m, effective_from: 2025-01-01, input: 1, output: 1, reasoning: x}\n",
    "prices:\n  - {provider: openai, model: m, effective_from: 2025-01-01, input: 1, output: 1, request: -5}\n",
    "prices:\n  - {provider: openai, model: m, effective_from: 2025-01-01, input: true, output: 1}\n",
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
