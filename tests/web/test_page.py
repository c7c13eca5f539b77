"""The trading page in headless Chromium against a running exchange (see conftest.py).

Each test acts as its own users; orders they leave are cancelled afterwards, so tests only look
at their own price levels, except the random flow, which compares the whole book with REST.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import CHROMIUM, Stack, eventually

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
    pytest.mark.timeout(120),
]

MARKET = "TATA_INR"


def sign_in(page: Any, user_id: str) -> None:
    page.fill("#sign-in [name=user_id]", user_id)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#who")
    assert page.text_content("#who") == f"user {user_id}"


def place_in_form(page: Any, side: str, price: str | None, quantity: str, **options: Any) -> None:
    page.click(f".sides [data-side={side}]")
    page.select_option("#order-form [name=type]", "limit" if price else "market")
    if price:
        page.fill("#order-form [name=price]", price)
        page.select_option("#order-form [name=time_in_force]", options.get("tif", "GTC"))
    page.fill("#order-form [name=quantity]", quantity)
    page.click("#submit-order")
    # The page clears both lines on submit and writes one when the API has answered.
    page.wait_for_function(
        "() => document.querySelector('#form-status').textContent"
        " || document.querySelector('#form-error').textContent"
    )


def book_level(page: Any, side: str, price: str) -> str | None:
    """The quantity the page shows at ``price`` (None when there is no such level)."""
    node = page.query_selector(f"#book-{side} .level[data-price='{price}']")
    return node.get_attribute("data-quantity") if node else None


def page_book(page: Any) -> dict:
    return page.evaluate(
        """() => {
            const b = window.exchange.book;
            return b && b.synced ? {bids: b.levels('bids'), asks: b.levels('asks'),
                                     last_update_id: b.lastUpdateId} : null;
        }"""
    )


def rest_balances(stack: Stack, user: str) -> dict:
    return stack.rest.ok("GET", f"/api/v1/balances?user_id={user}")


def page_balances(page: Any) -> dict:
    return page.evaluate("() => window.exchange.balances")


def test_book_shows_orders_placed_through_rest(stack: Stack, open_page, tmp_path: Path):
    maker = stack.user("book-maker", INR="100000", TATA="1000")
    page = open_page(f"/trade/{MARKET}")
    stack.rest.order(maker, market=MARKET, side="buy", price="410.5", quantity="3")
    stack.rest.order(maker, market=MARKET, side="buy", price="410.5", quantity="1.25")
    stack.rest.order(maker, market=MARKET, side="buy", price="409", quantity="2")
    stack.rest.order(maker, market=MARKET, side="sell", price="411.25", quantity="5")

    # The four orders reach the page as depth updates in their own time: wait for all of them.
    eventually(
        lambda: (
            (
                book_level(page, "bids", "410.5"),
                book_level(page, "bids", "409"),
                book_level(page, "asks", "411.25"),
            )
            == ("4.25", "2", "5")
        ),
        what="bid levels 410.5 and 409, ask level 411.25",
    )
    assert page.text_content("#best-bid") == "410.5"
    assert page.text_content("#best-ask") == "411.25"
    assert page.text_content("#spread") == "0.75"
    totals = page.eval_on_selector_all(
        "#book-bids .level", "rows => rows.map(r => r.querySelector('.total').textContent)"
    )
    assert totals[:2] == ["4.25", "6.25"]  # cumulative from the best bid

    # Clicking a level puts its price in the form.
    page.click("#book-asks .level[data-price='411.25']")
    assert page.input_value("#order-form [name=price]") == "411.25"
    page.screenshot(path=str(tmp_path / "page-1280x800.png"))
    # Another market: its own address and book.
    page.click("#markets [data-market='BTC_USDT']")
    page.wait_for_url("**/trade/BTC_USDT")
    assert page.text_content("#book-market") == "BTC/USDT"
    eventually(lambda: page_book(page) is not None, what="the BTC_USDT snapshot")
    assert book_level(page, "bids", "410.5") is None
    assert page.js_errors == []


def test_form_order_appears_in_open_orders_and_book(stack: Stack, open_page):
    user = stack.user("form-user", INR="100000")
    page = open_page("/")
    sign_in(page, user)
    place_in_form(page, "buy", "321.5", "7")
    row = page.wait_for_selector("#open-orders tr[data-order-id]")
    order_id = row.get_attribute("data-order-id")
    assert "321.5" in row.text_content() and "new" in row.text_content()
    assert "new" in page.text_content("#form-status")
    eventually(lambda: book_level(page, "bids", "321.5") == "7", what="the form's bid in the book")

    (placed,) = stack.rest.ok("GET", f"/api/v1/order/open?market={MARKET}&user_id={user}")
    assert placed["order_id"] == order_id and placed["price"] == "321.5"
    # The balances panel shows the locked funds (7 × 321.5), live from the private stream.
    eventually(
        lambda: page_balances(page).get("INR") == rest_balances(stack, user)["INR"],
        what="balances",
    )
    assert page.text_content("#balances tr[data-asset=INR] .locked") == "2250.5"


def test_crossing_order_from_another_user(stack: Stack, open_page):
    seller = stack.user("cross-seller", TATA="100")
    buyer = stack.user("cross-buyer", INR="100000")
    page = open_page(f"/trade/{MARKET}")
    sign_in(page, seller)
    place_in_form(page, "sell", "250.75", "4")
    page.wait_for_selector("#open-orders tr[data-order-id]")
    eventually(lambda: book_level(page, "asks", "250.75") == "4", what="the ask")

    taken = stack.rest.order(buyer, market=MARKET, side="buy", price="250.75", quantity="1.5")
    assert taken["status"] == "filled", taken
    trade_id = taken["fills"][0]["trade_id"]

    # Trades: the new trade, coloured as a taker buy.
    row = page.wait_for_selector(f"#trades .trade[data-trade-id='{trade_id}']")
    assert row.get_attribute("data-taker") == "buy"
    assert "250.75" in row.text_content() and "1.5" in row.text_content()
    # The book and the open order follow.
    eventually(lambda: book_level(page, "asks", "250.75") == "2.5", what="the ask after the fill")
    eventually(lambda: "partially_filled" in page.text_content("#open-orders"), what="partial fill")
    # Balances: what REST says, live.
    eventually(
        lambda: page_balances(page) == rest_balances(stack, seller), what="the seller's balances"
    )
    assert page_balances(page)["INR"]["available"] == "376.125"  # 1.5 × 250.75
    # The last candle closes at the trade's price and counts its volume.
    last = eventually(lambda: page.evaluate("() => window.exchange.chart.last()"), what="a candle")
    assert last["close"] == "250.75"
    live = {k: v for k, v in last.items() if k not in ("type", "interval")}
    eventually(
        lambda: stack.rest.ok("GET", f"/api/v1/klines?market={MARKET}&interval=1m")[-1] == live,
        what="the page's last candle to equal REST's",
    )
    # Recent fills (from the database, a moment behind) show the maker's side.
    fill = page.wait_for_selector(f"#fills tr[data-trade-id='{trade_id}']")
    assert "sell" in fill.text_content() and "maker" in fill.text_content()
    # Another interval loads its history from REST.
    page.click("#intervals [data-interval='5m']")
    eventually(
        lambda: (
            (page.evaluate("() => window.exchange.chart.last()") or {}).get("start")
            == stack.rest.ok("GET", f"/api/v1/klines?market={MARKET}&interval=5m")[-1]["start"]
        ),
        what="the 5m candles",
    )
    page.click("#intervals [data-interval='1m']")


def test_cancel_from_the_page(stack: Stack, open_page):
    user = stack.user("cancel-user", TATA="100")
    page = open_page("/")
    sign_in(page, user)
    for price in ("777", "778"):
        stack.rest.order(user, market=MARKET, side="sell", price=price, quantity="1")
    eventually(
        lambda: len(page.query_selector_all("#open-orders tr[data-order-id]")) == 2,
        what="two open orders",
    )
    eventually(lambda: book_level(page, "asks", "777") == "1", what="the ask at 777")
    page.click("#open-orders tr:has-text('777') button.cancel")
    eventually(lambda: book_level(page, "asks", "777") is None, what="777 gone from the book")
    eventually(
        lambda: len(page.query_selector_all("#open-orders tr[data-order-id]")) == 1,
        what="one open order",
    )
    assert "cancelled" in page.text_content("#form-status")
    page.click("#cancel-all")
    eventually(lambda: book_level(page, "asks", "778") is None, what="778 gone from the book")
    assert stack.rest.ok("GET", f"/api/v1/order/open?user_id={user}") == []
    assert page.query_selector("#open-orders tr[data-order-id]") is None


def test_insufficient_funds_shows_the_api_message(stack: Stack, open_page):
    user = stack.user("poor-user", INR="10")
    page = open_page("/")
    sign_in(page, user)
    place_in_form(page, "buy", "100", "5")
    status, answer = stack.rest.call(
        "POST",
        "/api/v1/order",
        {"user_id": user, "market": MARKET, "side": "buy", "price": "100", "quantity": "5"},
    )
    assert status == 400 and answer["error"]["code"] == "INSUFFICIENT_FUNDS"
    shown = eventually(lambda: page.text_content("#form-error"), what="an error beside the form")
    assert answer["error"]["message"] in shown and "INSUFFICIENT_FUNDS" in shown
    # A malformed price gets the API's words too.
    place_in_form(page, "buy", "1.234", "1")
    eventually(lambda: "INVALID_PRICE" in page.text_content("#form-error"), what="INVALID_PRICE")


def test_after_a_random_flow_the_page_book_equals_rest_depth(
    stack: Stack, open_page, tmp_path: Path
):
    users = [stack.user(f"flow-{i}", INR="10000000", TATA="100000") for i in range(3)]
    page = open_page(f"/trade/{MARKET}")
    sign_in(page, users[0])
    rng = random.Random(10)
    resting: list[tuple[str, str]] = []
    for step in range(120):
        user = rng.choice(users)
        if resting and rng.random() < 0.25:
            owner, order_id = resting.pop(rng.randrange(len(resting)))
            stack.rest.call(
                "DELETE",
                "/api/v1/order",
                {"user_id": owner, "market": MARKET, "order_id": order_id},
            )
            continue
        side = rng.choice(["buy", "sell"])
        # Prices straddle 500 so orders cross now and then.
        price = f"{rng.randint(49_500, 50_500) / 100:.2f}"
        quantity = f"{rng.randint(1, 500) / 100:.2f}"
        if step % 10 == 0:  # some through the page's own form, as users[0]
            place_in_form(page, side, price, quantity)
            continue
        order = stack.rest.order(user, market=MARKET, side=side, price=price, quantity=quantity)
        if order["status"] in ("new", "partially_filled"):
            resting.append((user, order["order_id"]))

    def same() -> bool:
        rest = stack.rest.depth(MARKET)
        mine = page_book(page)
        return bool(mine) and mine["bids"] == rest["bids"] and mine["asks"] == rest["asks"]

    eventually(same, what="the page's book to equal REST depth")
    # The rows on screen are the best levels of that book.
    rest = stack.rest.depth(MARKET)

    def rows(side: str) -> list:
        return page.eval_on_selector_all(
            f"#book-{side} .level", "rows => rows.map(r => [r.dataset.price, r.dataset.quantity])"
        )

    eventually(lambda: rows("bids") == rest["bids"][:20], what="the bid rows")
    eventually(lambda: rows("asks") == rest["asks"][:20][::-1], what="the ask rows")
    page.screenshot(path=str(tmp_path / "page-after-flow-1280x800.png"))
    assert page.js_errors == []


def test_readable_at_a_phone_width(stack: Stack, open_page, tmp_path: Path):
    page = open_page(f"/trade/{MARKET}", width=390, height=844)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at a phone's width ({width}px)"
    assert page.is_visible("#order-form") and page.is_visible("#book-bids")
    page.screenshot(path=str(tmp_path / "page-phone.png"), full_page=True)


def test_lost_websocket_shows_a_banner_and_resyncs(stack: Stack, open_page):
    maker = stack.user("ws-maker", INR="100000")
    page = open_page(f"/trade/{MARKET}")
    assert page.is_hidden("#ws-banner")
    ws = stack.programs["ws"]
    ws.stop()
    page.wait_for_selector("#ws-banner", state="visible")
    # Changes while the page is cut off arrive through the resync.
    stack.rest.order(maker, market=MARKET, side="buy", price="123.45", quantity="6")
    ws.start()
    page.wait_for_selector("#ws-banner", state="hidden", timeout=30_000)
    eventually(lambda: book_level(page, "bids", "123.45") == "6", what="the book after resync")
    stack.rest.order(maker, market=MARKET, side="buy", price="123.45", quantity="1")
    eventually(lambda: book_level(page, "bids", "123.45") == "7", what="live diffs again")


def test_api_key_mode_signs_requests_in_the_browser(stack: Stack, secure_stack: Stack, open_page):
    rest = secure_stack.rest
    created = rest.admin("/api/v1/admin/users", {})
    user, key, secret = created["user_id"], created["api_key"], created["api_secret"]
    rest.deposit(user, "INR", "5000")
    page = open_page("/", base_url=secure_stack.base_url)
    assert page.evaluate("() => window.exchange.config.auth") == "apikey"

    # A wrong secret is refused with the API's words and not kept.
    page.fill("#sign-in [name=api_key]", key)
    page.fill("#sign-in [name=api_secret]", "not-the-secret")
    page.click("#sign-in button[type=submit]")
    eventually(lambda: "UNAUTHORIZED" in page.text_content("#sign-in-error"), what="refusal")

    page.fill("#sign-in [name=api_secret]", secret)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("#who")
    place_in_form(page, "buy", "111.11", "2")
    row = page.wait_for_selector("#open-orders tr[data-order-id]")
    # The order is the key's user's, and its locked funds arrive on the private balances stream
    # (the page reads balances over REST only when it signs in), which needs a signed WS AUTH.
    order = stack.rest.ok(
        "GET", f"/api/v1/order?order_id={row.get_attribute('data-order-id')}&user_id={user}"
    )
    assert order["price"] == "111.11"
    eventually(
        lambda: page.text_content("#balances tr[data-asset=INR] .locked") == "222.22",
        what="locked INR from the balances stream",
    )
    assert page.evaluate("() => window.exchange.socket.authed") is True
    # sessionStorage keeps the key for a reload.
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.text_content("#who").startswith("key ")
    page.click("#open-orders button.cancel")
    eventually(lambda: page.query_selector("#open-orders tr[data-order-id]") is None, what="cancel")


def test_stop_order_from_the_form_waits_then_triggers(stack: Stack, open_page, tmp_path: Path):
    market = "ETH_USDT"
    maker = stack.user("stop-maker", USDT="100000", ETH="100")
    taker = stack.user("stop-taker", USDT="100000", ETH="100")
    user = stack.user("stop-user", ETH="10")
    # the last trade price: 2000
    stack.rest.order(maker, market=market, side="sell", price="2000", quantity="0.5")
    stack.rest.order(taker, market=market, side="buy", price="2000", quantity="0.5")
    page = open_page(f"/trade/{market}")
    sign_in(page, user)

    # a stop-limit sell: waits until a trade at 1995 or below, then offers at 1995
    page.fill("#order-form [name=trigger_price]", "1995")
    place_in_form(page, "sell", "1995", "1.5")
    assert "trigger pending" in page.text_content("#form-status")
    row = page.wait_for_selector("#open-orders tr[data-order-id]")
    order_id = row.get_attribute("data-order-id")
    assert row.query_selector(".trigger").text_content() == "1995"
    assert row.query_selector(".status").text_content() == "trigger_pending"
    eventually(
        lambda: page_balances(page).get("ETH", {}).get("locked") == "1.5", what="1.5 ETH locked"
    )
    assert book_level(page, "asks", "1995") is None  # a waiting stop is not in the book
    page.screenshot(path=str(tmp_path / "stop-pending.png"))

    # a trade at 1995 triggers it: it rests at 1995 and the page shows it live
    stack.rest.order(maker, market=market, side="buy", price="1995", quantity="0.1")
    stack.rest.order(taker, market=market, side="sell", price="1995", quantity="0.1")
    eventually(lambda: book_level(page, "asks", "1995") == "1.5", what="the triggered ask")
    status = f"#open-orders tr[data-order-id='{order_id}'] .status"
    eventually(lambda: page.text_content(status) == "new", what="the stop triggered")
    (placed,) = stack.rest.ok("GET", f"/api/v1/order/open?market={market}&user_id={user}")
    assert placed["triggered_at"] is not None and placed["trigger_price"] == "1995"
    page.screenshot(path=str(tmp_path / "stop-triggered.png"))

    # a trigger equal to the last price is refused with the API's words
    page.fill("#order-form [name=trigger_price]", "1995")
    place_in_form(page, "sell", "1990", "1")
    eventually(lambda: "INVALID_PRICE" in page.text_content("#form-error"), what="INVALID_PRICE")
    page.fill("#order-form [name=trigger_price]", "")
    assert page.js_errors == []
