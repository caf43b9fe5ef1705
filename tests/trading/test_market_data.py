"""The desk's market data on the platform, end to end: files imported through `oshal trade data import`, Alpaca
bars fetched through the connector (a ticket to the market-data bot, the tool gateway, the tenant's stored keys) from
a local server speaking Alpaca's wire format, crypto candles through ccxt from a local Binance; and a backtest from
the platform's bars equal to one from the file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, Platform, TenantClient, make_tenant
from external.alpaca_data import FakeAlpacaData
from external.fake_binance import FakeBinance
from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.publisher_keys import generate_keypair, private_key_pem, public_key_text
from oshal.connectors.signing import sign_manifest
from oshal.connectors.trust import TrustStore
from oshal_trading import alpaca
from oshal_trading.backtest import BacktestConfig, BacktestResult, run
from oshal_trading.bars import load_bundled
from oshal_trading.market_data import MarketDataError, download, load_platform, upload
from oshal_trading.model import Bar
from oshal_trading.platform_client import PlatformClient

ALPACA_SPEC = next((folder / "shared" / "data" / "openapi" / "finance" / "alpaca-market-data.yaml"
                    for folder in REPO.parents if (folder / "shared" / "data" / "openapi").is_dir()), None)
FIRST, LAST = dt.date(2015, 1, 1), dt.date(2017, 12, 31)


def _trade(platform: Platform, key: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OSHAL_API_URL": platform.url, "OSHAL_API_KEY": key, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "oshal.cli.main", "trade", *args], env=env, capture_output=True,
                          text=True, timeout=180, cwd=cwd)


def _ohlcv(bars: list[Bar]) -> list[tuple[dt.datetime, int, int, int, int, int]]:
    return [(b.start, b.open, b.high, b.low, b.close, b.volume) for b in bars]


def _same_backtest(a: BacktestResult, b: BacktestResult) -> None:
    assert (a.days, a.equity, a.trade_pnls, a.bars) == (b.days, b.equity, b.trade_pnls, b.bars)
    assert a.fills == b.fills and a.signals == b.signals
    assert dataclasses.asdict(a.metrics) == dataclasses.asdict(b.metrics)


@pytest.fixture
def ops(platform: Platform) -> Iterator[TenantClient]:
    tenant = make_tenant(platform, "desk", role="operator")
    yield tenant
    tenant.http.close()


def test_a_file_imported_through_the_cli_backtests_exactly_like_the_file(platform: Platform, ops: TenantClient,
                                                                         tmp_path: Path) -> None:
    source = resources.files("oshal_trading").joinpath("data", "AAPL.csv")
    file = tmp_path / "aapl.csv"
    file.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    first = _trade(platform, ops.key, "data", "import", str(file), "--symbol", "AAPL", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "uploading bars" in first.stderr and "753/753" in first.stderr  # the progress bar, on stderr
    row = next(line.split("│") for line in first.stdout.splitlines() if "AAPL" in line)
    assert [cell.strip() for cell in row[1:-1]] == ["AAPL", "1d", "753", "753", "0", "0"]
    again = _trade(platform, ops.key, "data", "import", str(file), "--symbol", "AAPL", cwd=tmp_path)
    row = next(line.split("│") for line in again.stdout.splitlines() if "AAPL" in line)
    assert [cell.strip() for cell in row[1:-1]] == ["AAPL", "1d", "753", "0", "0", "753"]  # idempotent

    listed = _trade(platform, ops.key, "data", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [series] = json.loads(listed.stdout)
    assert (series["symbol"], series["timeframe"], series["bars"]) == ("AAPL", "1d", 753)
    assert series["first"].startswith("2015-01-02") and series["last"].startswith("2017-12-29")

    reports = {}
    for source_name in ("bundled", "platform"):
        done = _trade(platform, ops.key, "backtest", "sma-cross", "--symbols", "AAPL", "--from", "2015-06-01", "--to",
                      "2017-06-30", "--source", source_name, "--json", "--chart", f"{source_name}.png",
                      cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        reports[source_name] = {k: v for k, v in json.loads(done.stdout).items() if k != "chart"}
    assert reports["platform"] == reports["bundled"] and reports["platform"]["fills"] > 0

    missing = _trade(platform, ops.key, "backtest", "sma-cross", "--symbols", "AAPL,TSLA", "--source", "platform",
                     cwd=tmp_path)
    assert missing.returncode == 2 and "holds no 1d bars of TSLA" in missing.stderr, missing.stderr


def test_a_parquet_file_and_an_upload_in_small_chunks_store_the_same_bars(platform: Platform, ops: TenantClient,
                                                                           tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tsla = load_bundled(["TSLA"])["TSLA"]
    table = pa.table({"Date": [b.start.date() for b in tsla], "Open": [b.open / 100 for b in tsla],
                      "High": [b.high / 100 for b in tsla], "Low": [b.low / 100 for b in tsla],
                      "Close": [b.close / 100 for b in tsla], "Volume": [b.volume for b in tsla]})
    pq.write_table(table, tmp_path / "tsla.parquet")
    done = _trade(platform, ops.key, "data", "import", str(tmp_path / "tsla.parquet"), "--symbol", "TSLA",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with PlatformClient(platform.url, ops.key) as client:
        assert _ohlcv(download(client, "TSLA", "1d")) == _ohlcv(tsla)
        chunks: list[int] = []
        googl = load_bundled(["GOOGL"])["GOOGL"]
        [result] = upload(client, googl, source="chunked", chunk=100, on_chunk=chunks.append)
        assert chunks == [100] * 7 + [54] and (result.received, result.inserted) == (754, 754)
        assert _ohlcv(download(client, "GOOGL", "1d")) == _ohlcv(googl)
        window = download(client, "GOOGL", "1d", start=dt.datetime(2016, 1, 1, tzinfo=dt.UTC),
                          end=dt.datetime(2016, 2, 1, tzinfo=dt.UTC))
        assert [b.start.date() for b in window] == [b.start.date() for b in googl
                                                    if dt.date(2016, 1, 1) <= b.start.date() < dt.date(2016, 2, 1)]

    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Open,High,Low,Close,Volume\n2016-01-04,10,9,8,9.5,100\n2016-01-05,10,11,9,x,100\n")
    refused = _trade(platform, ops.key, "data", "import", str(bad), "--symbol", "X", cwd=tmp_path)
    assert refused.returncode == 2
    assert "bad.csv:2: high" in refused.stderr and "bad.csv:3: close" in refused.stderr, refused.stderr


# --- Alpaca, through the platform's connector ----------------------------------------------------------------


@pytest.fixture
def alpaca_server(platform: Platform) -> Iterator[FakeAlpacaData]:
    """The operator's path: the connector imported from Alpaca's real spec, pointed at the local server, its bars
    operation enabled, signed by a trusted publisher and enabled."""
    assert ALPACA_SPEC is not None, "../shared/data/openapi/finance/alpaca-market-data.yaml is not beside the repo"
    with FakeAlpacaData() as server, platform.client() as admin:
        document = yaml.safe_load(ALPACA_SPEC.read_text())
        imported = admin.post("/v1/connectors/import", json={"document": document, "id": alpaca.CONNECTOR,
                                                              "publisher": "acme", "category": "finance",
                                                              "origin": str(ALPACA_SPEC.name)})
        assert imported.status_code == 201, imported.text
        patched = admin.patch(f"/v1/connectors/{alpaca.CONNECTOR}",
                              json={"base_url": server.root, "allow_private_network": True})
        assert patched.status_code == 200, patched.text
        enabled = admin.post(f"/v1/connectors/{alpaca.CONNECTOR}/operations", json={"enable": [alpaca.OPERATION]})
        assert enabled.status_code == 200, enabled.text
        manifest = ConnectorManifest.model_validate(admin.get(f"/v1/connectors/{alpaca.CONNECTOR}").json()["manifest"])
        private, public = generate_keypair()
        TrustStore.in_home(platform.home).trust("acme", public_key_text(public))
        signature = sign_manifest(manifest, private_key_pem(private), "acme")
        signed = admin.post(f"/v1/connectors/{alpaca.CONNECTOR}/signature", json={"signature": signature.to_dict()})
        assert signed.status_code == 200 and signed.json()["state"] == "enabled", signed.text
        yield server


def _connect(ops: TenantClient, server: FakeAlpacaData, *, secret: str | None = None, policy: str = "auto") -> None:
    keys = {"APCA-API-KEY-ID": server.key_id, "APCA-API-SECRET-KEY": secret or server.secret}
    added = ops.http.post("/v1/connections", json={"connector": alpaca.CONNECTOR, "secret": json.dumps(keys)})
    assert added.status_code in (200, 201), added.text
    set_policy = ops.http.put(f"/v1/bots/{alpaca.BOT}/tools", json={"connector": alpaca.CONNECTOR,
                                                                    "operation": alpaca.OPERATION, "mode": policy})
    assert set_policy.status_code == 200, set_policy.text


def test_alpaca_bars_fetched_through_the_connector_backtest_like_the_file(platform: Platform, ops: TenantClient,
                                                                         alpaca_server: FakeAlpacaData,
                                                                         tmp_path: Path) -> None:
    _connect(ops, alpaca_server)
    done = _trade(platform, ops.key, "data", "fetch", "--source", "alpaca", "--symbol", "AAPL", "--from",
                  FIRST.isoformat(), "--to", LAST.isoformat(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    row = next(line.split("│") for line in done.stdout.splitlines() if "AAPL" in line)
    assert [cell.strip() for cell in row[1:-1]] == ["AAPL", "1d", "753", "753", "0", "0"]
    [call] = alpaca_server.requests
    assert call.path == "/v2/stocks/AAPL/bars"
    assert call.query == {"timeframe": "1Day", "start": "2015-01-01T00:00:00Z", "end": "2017-12-31T23:59:59Z",
                          "limit": "10000", "adjustment": "raw"}
    assert call.headers["apca-api-key-id"] == alpaca_server.key_id  # the tenant's keys, added by the runtime

    file_bars = load_bundled(["AAPL"])
    with PlatformClient(platform.url, ops.key) as client:
        stored = load_platform(client, ["AAPL"], first_day=FIRST, last_day=LAST)
        assert _ohlcv(stored["AAPL"]) == _ohlcv(file_bars["AAPL"])
        config = BacktestConfig("sma-cross", params={"fast": 10, "slow": 30})
        _same_backtest(run(config, stored), run(config, file_bars))

        # a page per ticket, following next_page_token: three tickets for 753 bars at 300 a page
        before = len(alpaca_server.requests)
        pages: list[int] = []
        paged = alpaca.fetch(client, "AAPL", "1d", FIRST, LAST, page_limit=300, on_page=pages.append)
    assert pages == [300, 300, 153] and len(alpaca_server.requests) == before + 3
    assert [r.query.get("page_token") is None for r in alpaca_server.requests[before:]] == [True, False, False]
    assert _ohlcv(paged) == _ohlcv(file_bars["AAPL"])
    tickets = ops.http.get("/v1/tickets", params={"bot": alpaca.BOT}).json()["items"]
    assert len(tickets) == 4 and {t["status"] for t in tickets} == {"done"}


def test_alpaca_refusals_say_what_to_fix(platform: Platform, ops: TenantClient,
                                        alpaca_server: FakeAlpacaData, tmp_path: Path) -> None:
    with PlatformClient(platform.url, ops.key) as client:
        with pytest.raises(MarketDataError, match=r"ended failed: .* \(tool policy off\)"):
            alpaca.fetch(client, "AAPL", "1d", FIRST, LAST)
        policy = ops.http.put(f"/v1/bots/{alpaca.BOT}/tools", json={"connector": alpaca.CONNECTOR,
                                                                    "operation": alpaca.OPERATION, "mode": "auto"})
        assert policy.status_code == 200, policy.text
        with pytest.raises(MarketDataError, match="tenant has no connection for connector 'alpaca-market-data'"):
            alpaca.fetch(client, "AAPL", "1d", FIRST, LAST)
        assert alpaca_server.requests == []  # refused before anything left the platform
        _connect(ops, alpaca_server, secret="wrong-secret")
        with pytest.raises(MarketDataError, match=r"Alpaca answered 403: forbidden\."):
            alpaca.fetch(client, "AAPL", "1d", FIRST, LAST)
        unscripted = client.run_ticket(alpaca.BOT, {"symbol": "AAPL"})
    assert unscripted["status"] == "failed" and "runs the connector calls its ticket scripts" in unscripted["error"]
    assert alpaca_server.requests and all(r.path == "/v2/stocks/AAPL/bars" for r in alpaca_server.requests)
    wrong = _trade(platform, ops.key, "data", "fetch", "--source", "alpaca", "--symbol", "AAPL", "--from",
                   "2016-01-01", "--timeframe", "2d", cwd=tmp_path)
    assert wrong.returncode == 2 and "timeframe '2d' is not understood" in wrong.stderr, wrong.stderr


# --- crypto, through ccxt ------------------------------------------------------------------------------------


def test_crypto_candles_fetched_with_ccxt_are_stored_under_their_pair(platform: Platform, ops: TenantClient,
                                                                      tmp_path: Path) -> None:
    with FakeBinance() as exchange:
        done = _trade(platform, ops.key, "data", "fetch", "--source", "ccxt:binance", "--symbol", "TSLA/USDT",
                      "--from", "2016-01-01", "--to", "2016-12-31", "--api-root", exchange.root, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        klines = [p for p in exchange.paths if p.startswith("/api/v3/klines")]
        assert len(klines) == 1 and "symbol=TSLAUSDT" in klines[0] and "interval=1d" in klines[0]
        bad_pair = _trade(platform, ops.key, "data", "fetch", "--source", "ccxt:binance", "--symbol", "NOPE/USDT",
                          "--from", "2016-01-01", "--api-root", exchange.root, cwd=tmp_path)
        assert bad_pair.returncode == 2 and "binance: BadSymbol" in bad_pair.stderr, bad_pair.stderr
    listed = _trade(platform, ops.key, "data", "list", "--symbol", "TSLA/USDT", "--json", cwd=tmp_path)
    [series] = json.loads(listed.stdout)
    assert (series["symbol"], series["bars"]) == ("TSLA/USDT", 252)
    tsla_2016 = [b for b in load_bundled(["TSLA"])["TSLA"] if b.start.year == 2016]
    with PlatformClient(platform.url, ops.key) as client:
        stored = download(client, "TSLA/USDT", "1d")
        page: dict[str, Any] = client.bars_page("TSLA/USDT", "1d", start=None, end=None, cursor=None, limit=1)
    assert _ohlcv(stored) == _ohlcv(tsla_2016)
    assert page["items"][0]["source"] == "ccxt:binance"
    unknown = _trade(platform, ops.key, "data", "fetch", "--source", "ccxt:nosuchexchange", "--symbol", "BTC/USDT",
                     "--from", "2016-01-01", cwd=tmp_path)
    assert unknown.returncode == 2 and "ccxt knows no exchange 'nosuchexchange'" in unknown.stderr
