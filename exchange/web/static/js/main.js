// The trading page: wires the REST client, the socket, the book, the chart and the panels.
// Everything shown comes from the public contract (REST + WebSocket); window.exchange exposes
// the page's state for the browser tests.

import { Api, ApiError, hmacHex, loadCredentials, saveCredentials } from "./api.js";
import { Book } from "./book.js";
import { add, sub } from "./decimal.js";
import { Socket } from "./socket.js";
import { Chart, INTERVALS } from "./chart.js";
import { el, clear, fmtTime, changeClass } from "./dom.js";

const BOOK_LEVELS = 20;
const TRADES_KEPT = 60;
const FILLS_KEPT = 30;
// A stop order waiting for its trigger price is open too (listed, cancellable, not in the book).
const OPEN = new Set(["new", "partially_filled", "trigger_pending"]);

const state = {
  config: null,
  api: null,
  socket: null,
  markets: new Map(), // symbol -> market
  tickers: new Map(), // symbol -> ticker
  market: null,
  interval: localStorage.getItem("exchange.interval") || "1m",
  book: null,
  trades: [],
  chart: null,
  side: "buy",
  orders: new Map(), // order_id -> order
  balances: {},
  fills: [],
  privateBuffers: new Set(), // frames that arrive while private state loads, per load
};
window.exchange = state;

const $ = (id) => document.getElementById(id);

// --- rendering, coalesced --------------------------------------------------------------------

const dirty = new Set();
let renderTimer = null;
function schedule(...parts) {
  parts.forEach((p) => dirty.add(p));
  if (renderTimer === null) renderTimer = setTimeout(flush, 16);
}
function flush() {
  renderTimer = null;
  const parts = [...dirty];
  dirty.clear();
  for (const part of parts) RENDER[part]();
}

const RENDER = {
  markets: renderMarkets,
  book: renderBook,
  trades: renderTrades,
  orders: renderOrders,
  balances: renderBalances,
  fills: renderFills,
  account: renderAccount,
};

function renderMarkets() {
  const nav = clear($("markets"));
  for (const symbol of state.markets.keys()) {
    const t = state.tickers.get(symbol) || {};
    const pct = t.price_change_percent;
    nav.append(
      el("a", {
        class: `market${symbol === state.market ? " active" : ""}`,
        href: `/trade/${symbol}`,
        "data-market": symbol,
        onclick: (event) => {
          event.preventDefault();
          selectMarket(symbol, true);
        },
      },
      el("span", { class: "symbol" }, symbol.replace("_", "/")),
      el("span", { class: "price", "data-field": "last" }, t.last_price ?? "–"),
      el("span", { class: `change ${changeClass(pct)}`, "data-field": "change" },
        pct == null ? "" : `${pct.startsWith("-") ? "" : "+"}${pct}%`)),
    );
  }
  const t = state.tickers.get(state.market);
  const last = state.trades[0]?.price ?? t?.last_price;
  $("last-price").textContent = last ?? "";
  document.title = last ? `${last} ${state.market} · exchange` : `${state.market} · exchange`;
}

function renderBook() {
  const book = state.book;
  document.body.dataset.bookSynced = book?.synced ? "1" : "0";
  const asks = clear($("book-asks"));
  const bids = clear($("book-bids"));
  if (!book) return;
  const askLevels = withTotals(book.levels("asks").slice(0, BOOK_LEVELS));
  const bidLevels = withTotals(book.levels("bids").slice(0, BOOK_LEVELS));
  const max = Math.max(
    Number(askLevels.at(-1)?.[2] ?? 0), Number(bidLevels.at(-1)?.[2] ?? 0), 1e-12);
  for (const level of [...askLevels].reverse()) asks.append(levelRow("ask", level, max));
  for (const level of bidLevels) bids.append(levelRow("bid", level, max));
  const bestBid = bidLevels[0]?.[0];
  const bestAsk = askLevels[0]?.[0];
  $("best-bid").textContent = bestBid ?? "–";
  $("best-ask").textContent = bestAsk ?? "–";
  $("spread").textContent = bestBid && bestAsk ? sub(bestAsk, bestBid) : "–";
}

function withTotals(levels) {
  let total = "0";
  return levels.map(([price, quantity]) => {
    total = add(total, quantity);
    return [price, quantity, total];
  });
}

function levelRow(side, [price, quantity, total], max) {
  const row = el("div", {
    class: `level ${side}`,
    "data-price": price,
    "data-quantity": quantity,
    title: "click to use this price",
    onclick: () => {
      document.querySelector("#order-form [name=price]").value = price;
      setOrderType("limit");
    },
  },
  el("span", { class: "price" }, price),
  el("span", { class: "size" }, quantity),
  el("span", { class: "total" }, total));
  row.style.setProperty("--depth", `${Math.min(100, (Number(total) / max) * 100).toFixed(1)}%`);
  return row;
}

function renderTrades() {
  const list = clear($("trades"));
  for (const t of state.trades) {
    // is_buyer_maker: the seller took liquidity
    const taker = t.is_buyer_maker ? "sell" : "buy";
    list.append(el("div", { class: `trade ${taker}`, "data-trade-id": t.id, "data-taker": taker },
      el("span", { class: "price" }, t.price),
      el("span", { class: "size" }, t.quantity),
      el("span", { class: "time" }, fmtTime(t.timestamp))));
  }
  schedule("markets");
}

function renderOrders() {
  const body = clear($("open-orders"));
  const orders = [...state.orders.values()].sort((a, b) => b.created_at - a.created_at);
  for (const o of orders) {
    body.append(el("tr", { "data-order-id": o.order_id, class: o.side },
      el("td", {}, o.market),
      el("td", { class: "side" }, o.side),
      el("td", {}, o.price ?? "market"),
      el("td", { class: "trigger" }, o.trigger_price ?? ""),
      el("td", {}, o.quantity ?? ""),
      el("td", {}, o.executed_quantity),
      el("td", { class: "status" }, o.status),
      el("td", {}, el("button", {
        type: "button", class: "small cancel", onclick: () => cancelOrder(o),
      }, "Cancel"))));
  }
  if (!orders.length) body.append(el("tr", { class: "empty" }, el("td", { colspan: 8 },
    state.api?.signedIn ? "no open orders" : "sign in to trade")));
}

function renderBalances() {
  const body = clear($("balances"));
  for (const asset of Object.keys(state.balances).sort()) {
    const b = state.balances[asset];
    body.append(el("tr", { "data-asset": asset },
      el("td", {}, asset),
      el("td", { class: "available" }, b.available),
      el("td", { class: "locked" }, b.locked)));
  }
}

function renderFills() {
  const body = clear($("fills"));
  for (const f of state.fills) {
    body.append(el("tr", { "data-trade-id": f.trade_id, class: f.side },
      el("td", { class: "side" }, f.side),
      el("td", {}, f.price),
      el("td", {}, f.quantity),
      el("td", {}, f.is_maker ? "maker" : "taker"),
      el("td", {}, fmtTime(f.timestamp))));
  }
}

function renderAccount() {
  const box = clear($("account"));
  const api = state.api;
  if (api.signedIn) {
    const who = api.authMode === "dev" ? `user ${api.credentials.user_id}` : `key ${api.credentials.api_key.slice(0, 8)}…`;
    box.append(el("div", { class: "who" },
      el("span", {}, "Trading as "), el("b", { id: "who" }, who),
      el("button", { type: "button", class: "small", id: "sign-out", onclick: signOut }, "Sign out")));
    return;
  }
  const form = el("form", { class: "sign-in", id: "sign-in", onsubmit: (e) => { e.preventDefault(); signIn(form); } });
  if (api.authMode === "dev") {
    form.append(
      el("span", { class: "muted" }, "Dev mode: pick a user id"),
      el("input", { name: "user_id", placeholder: "user id", value: "1", "aria-label": "user id" }),
      el("button", { type: "submit" }, "Use"));
  } else {
    form.append(
      el("input", { name: "api_key", placeholder: "API key", "aria-label": "API key" }),
      el("input", { name: "api_secret", placeholder: "API secret", type: "password", "aria-label": "API secret" }),
      el("button", { type: "submit" }, "Sign in"));
  }
  form.append(el("p", { class: "form-error", id: "sign-in-error" }));
  box.append(form);
}

// --- market selection and public data --------------------------------------------------------

function marketStreams(symbol) {
  return [`depth@${symbol}`, `trade@${symbol}`, `kline_${state.interval}@${symbol}`];
}

async function selectMarket(symbol, push) {
  if (symbol === state.market) return;
  const previous = state.market;
  state.market = symbol;
  if (push) history.pushState({ market: symbol }, "", `/trade/${symbol}`);
  const m = state.markets.get(symbol);
  $("book-market").textContent = symbol.replace("_", "/");
  $("chart-market").textContent = symbol.replace("_", "/");
  document.querySelectorAll(".base-asset").forEach((n) => (n.textContent = m.base));
  document.querySelectorAll(".quote-asset").forEach((n) => (n.textContent = m.quote));
  document.querySelector("#order-form [name=price]").placeholder = m.tick_size;
  document.querySelector("#order-form [name=quantity]").placeholder = m.min_quantity;
  state.chart.setPrecision(m.tick_size);
  state.book = new Book(symbol, resyncBook);
  state.trades = [];
  state.fills = [];
  schedule("markets", "book", "trades", "fills");
  if (previous) await state.socket.unsubscribe(...marketStreams(previous)).catch(() => {});
  await state.socket.subscribe(...marketStreams(symbol)).catch(() => {});
  await Promise.all([loadTrades(), loadKlines(), loadFills()]);
}

function resyncBook(book) {
  // A gap in the update ids: ask the server for a fresh snapshot.
  schedule("book");
  state.socket.resubscribe(`depth@${book.market}`).catch(() => {});
}

async function loadTrades() {
  const symbol = state.market;
  try {
    const trades = await state.api.get("/api/v1/trades", { symbol, limit: TRADES_KEPT });
    if (symbol !== state.market) return;
    mergeTrades(trades);
  } catch (exc) {
    console.warn("trades", exc);
  }
}

function mergeTrades(trades) {
  const byId = new Map(state.trades.map((t) => [t.id, t]));
  for (const t of trades) byId.set(t.id, t);
  state.trades = [...byId.values()].sort((a, b) => b.id - a.id).slice(0, TRADES_KEPT);
  schedule("trades");
}

async function loadKlines() {
  const symbol = state.market;
  const interval = state.interval;
  try {
    const klines = await state.api.get("/api/v1/klines", { market: symbol, interval, limit: 500 });
    if (symbol === state.market && interval === state.interval) state.chart.load(klines);
  } catch (exc) {
    console.warn("klines", exc);
  }
}

async function loadTickers() {
  try {
    for (const t of await state.api.get("/api/v1/tickers")) state.tickers.set(t.market, t);
    schedule("markets");
  } catch (exc) {
    console.warn("tickers", exc);
  }
}

async function setInterval_(interval) {
  if (interval === state.interval) return;
  const old = `kline_${state.interval}@${state.market}`;
  state.interval = interval;
  localStorage.setItem("exchange.interval", interval);
  renderIntervals();
  await state.socket.unsubscribe(old).catch(() => {});
  await state.socket.subscribe(`kline_${interval}@${state.market}`).catch(() => {});
  await loadKlines();
}

function renderIntervals() {
  const box = clear($("intervals"));
  for (const i of INTERVALS) {
    box.append(el("button", {
      type: "button", class: `small${i === state.interval ? " active" : ""}`, "data-interval": i,
      onclick: () => setInterval_(i),
    }, i));
  }
}

// --- frames -----------------------------------------------------------------------------------

function onFrame(stream, data) {
  if (stream === "orders" || stream === "balances") {
    if (state.privateBuffers.size) state.privateBuffers.forEach((b) => b.push([stream, data]));
    else applyPrivate(stream, data);
    return;
  }
  const [kind, symbol] = stream.split("@");
  if (kind === "ticker") {
    state.tickers.set(symbol, data);
    schedule("markets");
    return;
  }
  if (symbol !== state.market) return;
  if (kind === "depth") {
    if (data.type === "depth_snapshot") state.book.snapshot(data);
    else if (!state.book.diff(data)) return;
    schedule("book");
  } else if (kind === "trade") {
    mergeTrades([data]);
  } else if (kind === `kline_${state.interval}`) {
    state.chart.update(data);
  }
}

function applyPrivate(stream, data) {
  if (stream === "orders") {
    const o = data.order;
    const known = state.orders.get(o.order_id);
    if (OPEN.has(o.status)) state.orders.set(o.order_id, o);
    else state.orders.delete(o.order_id);
    if (o.executed_quantity !== "0" && (!known || known.executed_quantity !== o.executed_quantity)) {
      refreshFillsSoon();
    }
    schedule("orders");
  } else {
    Object.assign(state.balances, data.balances);
    schedule("balances");
  }
}

let fillTimers = [];
function refreshFillsSoon() {
  // Fills are served from PostgreSQL, a few milliseconds behind the engine: ask twice.
  fillTimers.forEach(clearTimeout);
  fillTimers = [setTimeout(loadFills, 150), setTimeout(loadFills, 1200)];
}

// --- private state ----------------------------------------------------------------------------

async function loadFills() {
  if (!state.api.signedIn) return;
  const symbol = state.market;
  try {
    const fills = await state.api.private("GET", "/api/v1/fills", { query: { market: symbol, limit: FILLS_KEPT } });
    if (symbol === state.market) {
      state.fills = fills;
      schedule("fills");
    }
  } catch (exc) {
    console.warn("fills", exc);
  }
}

async function loadPrivate() {
  if (!state.api.signedIn) {
    state.orders.clear();
    state.balances = {};
    state.fills = [];
    schedule("orders", "balances", "fills");
    return;
  }
  // Frames that arrive during the fetch are replayed over its answer (they are newer or equal).
  const buffer = [];
  state.privateBuffers.add(buffer);
  try {
    const [orders, balances] = await Promise.all([
      state.api.private("GET", "/api/v1/order/open"),
      state.api.private("GET", "/api/v1/balances"),
    ]);
    state.orders = new Map(orders.map((o) => [o.order_id, o]));
    state.balances = balances;
  } catch (exc) {
    showError(exc);
  } finally {
    state.privateBuffers.delete(buffer);
    for (const [stream, data] of buffer) applyPrivate(stream, data);
  }
  schedule("orders", "balances");
  await loadFills();
}

async function authParams() {
  const c = state.api.credentials;
  if (!c) return null;
  if (state.api.authMode === "dev") return { user_id: c.user_id };
  const timestamp = String(Date.now());
  return { api_key: c.api_key, timestamp, signature: await hmacHex(c.api_secret, timestamp + "AUTH") };
}

async function signIn(form) {
  const data = Object.fromEntries(new FormData(form));
  const credentials = state.api.authMode === "dev"
    ? { user_id: data.user_id.trim() }
    : { api_key: data.api_key.trim(), api_secret: data.api_secret.trim() };
  if (Object.values(credentials).some((v) => !v)) {
    $("sign-in-error").textContent = "fill in every field";
    return;
  }
  state.api.credentials = credentials;
  try {
    await state.api.private("GET", "/api/v1/balances"); // proves the key before keeping it
  } catch (exc) {
    state.api.credentials = null;
    $("sign-in-error").textContent = exc instanceof ApiError ? exc.describe() : String(exc);
    return;
  }
  saveCredentials(credentials);
  await switchIdentity();
}

async function signOut() {
  state.api.credentials = null;
  saveCredentials(null);
  await switchIdentity();
}

async function switchIdentity() {
  const privateStreams = ["orders", "balances"];
  if (state.api.signedIn) privateStreams.forEach((s) => state.socket.streams.add(s));
  else privateStreams.forEach((s) => state.socket.streams.delete(s));
  state.socket.restart(); // a connection authenticates once; resubscribes everything
  schedule("account");
  clearMessages();
  await loadPrivate();
}

// --- order entry ------------------------------------------------------------------------------

function setSide(side) {
  state.side = side;
  document.querySelectorAll(".sides .side").forEach((b) => b.classList.toggle("active", b.dataset.side === side));
  const submit = $("submit-order");
  submit.textContent = side === "buy" ? "Buy" : "Sell";
  submit.className = `submit ${side}`;
}

function setOrderType(type) {
  const select = document.querySelector("#order-form [name=type]");
  select.value = type;
  document.querySelectorAll(".limit-only").forEach((n) => (n.hidden = type !== "limit"));
}

function clearMessages() {
  $("form-error").textContent = "";
  $("form-status").textContent = "";
}

function showError(exc) {
  $("form-status").textContent = "";
  $("form-error").textContent = exc instanceof ApiError ? exc.describe() : String(exc.message || exc);
}

function showStatus(text) {
  $("form-error").textContent = "";
  $("form-status").textContent = text;
}

async function submitOrder(event) {
  event.preventDefault();
  clearMessages();
  const form = event.target;
  const f = Object.fromEntries(new FormData(form));
  const body = { market: state.market, side: state.side, type: f.type, quantity: f.quantity.trim() };
  if (f.type === "limit") {
    body.price = f.price.trim();
    body.time_in_force = f.time_in_force;
    body.post_only = f.post_only === "on";
  }
  const trigger = (f.trigger_price || "").trim();
  if (trigger) body.trigger_price = trigger;
  const button = $("submit-order");
  button.disabled = true;
  try {
    const order = await state.api.private("POST", "/api/v1/order", { body });
    if (OPEN.has(order.status)) state.orders.set(order.order_id, order);
    else state.orders.delete(order.order_id);
    schedule("orders");
    if (order.fills?.length) refreshFillsSoon();
    showStatus(`order ${order.order_id}: ${order.status.replace("_", " ")}` +
      (order.executed_quantity !== "0" ? `, filled ${order.executed_quantity}` : ""));
  } catch (exc) {
    showError(exc);
  } finally {
    button.disabled = false;
  }
}

async function cancelOrder(order) {
  clearMessages();
  try {
    const done = await state.api.private("DELETE", "/api/v1/order", {
      body: { market: order.market, order_id: order.order_id },
    });
    state.orders.delete(done.order_id);
    schedule("orders");
    showStatus(`order ${done.order_id}: ${done.status}`);
  } catch (exc) {
    showError(exc);
  }
}

async function cancelAll() {
  clearMessages();
  try {
    const done = await state.api.private("DELETE", "/api/v1/orders", { query: { market: state.market } });
    for (const o of done) state.orders.delete(o.order_id);
    schedule("orders");
    showStatus(`cancelled ${done.length} order${done.length === 1 ? "" : "s"} on ${state.market}`);
  } catch (exc) {
    showError(exc);
  }
}

// --- start ------------------------------------------------------------------------------------

function marketFromPath() {
  const match = location.pathname.match(/^\/trade\/([^/]+)\/?$/);
  return match ? decodeURIComponent(match[1]).toUpperCase() : null;
}

async function start() {
  const api = new Api("dev");
  state.api = api;
  try {
    state.config = await api.get("/api/v1/config");
    api.authMode = state.config.auth;
    const markets = await api.get("/api/v1/markets");
    for (const m of markets) state.markets.set(m.market, m);
  } catch (exc) {
    document.body.prepend(el("div", { class: "banner" }, `cannot load the exchange: ${exc.message}`));
    return;
  }
  const saved = loadCredentials();
  if (saved && (api.authMode === "dev" ? saved.user_id : saved.api_key)) api.credentials = saved;

  state.chart = new Chart($("chart"));
  renderIntervals();
  document.querySelectorAll(".sides .side").forEach((b) => b.addEventListener("click", () => setSide(b.dataset.side)));
  document.querySelector("#order-form [name=type]").addEventListener("change", (e) => setOrderType(e.target.value));
  $("order-form").addEventListener("submit", submitOrder);
  $("cancel-all").addEventListener("click", cancelAll);
  window.addEventListener("popstate", () => {
    const m = marketFromPath();
    if (m && state.markets.has(m)) selectMarket(m, false);
  });

  const banner = $("ws-banner");
  state.socket = new Socket(state.config.ws_url, {
    onFrame,
    authParams,
    onDown: () => {
      banner.hidden = false;
      document.body.dataset.ws = "down";
      if (state.book) state.book.synced = false;
      schedule("book");
    },
    onOpen: () => {
      // (Re)connected: every stream was resubscribed (depth sends a new snapshot); catch up
      // on what the REST side knows.
      banner.hidden = true;
      document.body.dataset.ws = "up";
      loadTickers();
      loadTrades();
      loadKlines();
      loadPrivate();
    },
  });
  if (api.signedIn) ["orders", "balances"].forEach((s) => state.socket.streams.add(s));
  await state.socket.subscribe(...[...state.markets.keys()].map((m) => `ticker@${m}`)).catch(() => {});

  const wanted = marketFromPath();
  const first = state.markets.has(wanted) ? wanted : state.markets.has("TATA_INR") ? "TATA_INR" : [...state.markets.keys()][0];
  setOrderType("limit");
  schedule("account", "orders");
  await Promise.all([loadTickers(), selectMarket(first, false), loadPrivate()]);
  document.body.dataset.ready = "1";
}

start();
