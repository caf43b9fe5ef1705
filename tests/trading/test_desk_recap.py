"""The daily recap on the platform: the recap bot's ticket, checked against the desk's books, with the equity curve
as a PNG artifact of that ticket, kept as a record and filed once per desk and day."""

from __future__ import annotations

from conftest import REPO, Platform, make_tenant
from desk_support import START, desk
from oshal.bots.manifest import load_fleet
from oshal.bots.model_provider import ModelProvider, apply_provider


async def test_the_recap_of_a_replayed_session_agrees_with_the_books_and_carries_the_chart(platform: Platform) -> None:
    ops = make_tenant(platform, "desk-recap", role="operator")
    service = desk(platform.url, ops.key)
    await service.start()
    outcomes = await service.run(START.replace(month=2, day=12))
    assert any(o.fills for o in outcomes)
    document = await service.recap(outcomes[-1].day)
    recap = document["recap"]
    ledger = service.books.ledger
    assert recap["day"] == outcomes[-1].day.isoformat()
    assert recap["equity_end"] == outcomes[-1].equity == ledger.equity(service.books.closes)
    assert recap["equity_start"] == outcomes[-2].equity and recap["pnl"] == outcomes[-1].equity - outcomes[-2].equity
    assert recap["realized_total"] == ledger.realized_pnl() and recap["fees_total"] == ledger.fees()
    assert {p["symbol"]: p["quantity"] for p in recap["positions"]} == {
        s: p.quantity for s, p in ledger.positions().items()}
    assert recap["trial_balance_balanced"] is True and recap["signals_scored"] > 0
    assert recap["narrative"].startswith(f"On {recap['day']} the desk")
    # the narrator bot wrote the words on its own ticket (offline: the template's; a model's with a provider)
    assert document["narrative"]["by"] == "trade-narrator" and document["narrative"]["text"] == recap["narrative"]
    assert recap["chart"]["artifact"] == "equity.png"
    png = await service.api.download(f"/v1/tickets/{document['ticket']}/artifacts/equity.png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) == recap["chart"]["bytes"]
    # filed once: asking again returns the record, and the ticket is the same
    assert await service.recap(outcomes[-1].day) == document
    assert (await service.records.get("recaps", f"main.{recap['day']}")) == document
    await service.api.aclose()


def test_the_analyst_and_the_narrator_run_on_a_model_provider_when_one_is_configured() -> None:
    fleet = load_fleet(REPO / "fleet")
    provider = ModelProvider("openai", "gpt-test", "http://127.0.0.1:9/v1", "OPENAI_API_KEY")
    switched = apply_provider(fleet, provider)
    for name in ("trade-analyst", "trade-narrator"):
        assert fleet[name].model_capable and fleet[name].output_schema is not None
        assert switched[name].harness == "openai" and switched[name].model == "gpt-test"
    for name in ("trade-signal", "trade-risk", "trade-execute"):  # the numbers stay deterministic
        assert switched[name].harness == "deterministic"
