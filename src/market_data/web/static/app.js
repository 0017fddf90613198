// The web view: renders what the service pushes over /ui/ws. Plain JavaScript, no library.
// The service sends {"now_ms", "view": {"overview", "detail"}} at most 10 times a second;
// this page only draws the latest frame and tells the service which symbol it shows.
"use strict";

(function () {
  const $ = (selector) => document.querySelector(selector);
  // The access token (ui_token), if the page was opened with one: its WebSocket needs it too.
  const token = new URLSearchParams(location.search).get("token");
  const STALE_AFTER_MS = 3000; // the service sends at least once a second
  let socket = null;
  let retryDelay = 250;
  let lastFrame = null; // {now_ms, view}
  let receivedAt = 0; // performance.now() when lastFrame arrived
  let frames = 0;

  // ------------------------------------------------------------------ formatting

  function text(value) {
    return value === null || value === undefined ? "–" : String(value);
  }
  function fixed(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }
  function compact(value) {
    if (value === null || value === undefined) return "–";
    const abs = Math.abs(value);
    if (abs >= 1e9) return (value / 1e9).toFixed(2) + "G";
    if (abs >= 1e6) return (value / 1e6).toFixed(2) + "M";
    if (abs >= 1e4) return (value / 1e3).toFixed(1) + "k";
    return String(value);
  }
  function serverNow() {
    return lastFrame ? lastFrame.now_ms + (performance.now() - receivedAt) : Date.now();
  }
  function age(updatedMs) {
    if (updatedMs === null || updatedMs === undefined) return "–";
    const seconds = Math.max(0, serverNow() - updatedMs) / 1000;
    return seconds < 10 ? seconds.toFixed(1) + " s" : Math.round(seconds) + " s";
  }
  function clock(ms) {
    const d = new Date(ms);
    const pad = (n, w) => String(n).padStart(w, "0");
    return `${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${pad(d.getUTCMilliseconds(), 3)}`;
  }
  function cell(row, value, className) {
    const td = row.insertCell();
    td.textContent = value;
    if (className) td.className = className;
    return td;
  }

  // --------------------------------------------------------------------- routing

  function selected() {
    const symbol = decodeURIComponent(location.hash.replace(/^#\/?/, "")).toUpperCase();
    return /^[A-Z0-9]{2,20}$/.test(symbol) ? symbol : null;
  }
  function tellSelection() {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ symbol: selected() }));
    }
  }
  window.addEventListener("hashchange", () => {
    tellSelection();
    render();
  });

  // ------------------------------------------------------------------- the socket

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const auth = token ? "?token=" + encodeURIComponent(token) : "";
    socket = new WebSocket(`${scheme}//${location.host}/ui/ws${auth}`);
    socket.onopen = () => {
      retryDelay = 250;
      tellSelection();
    };
    socket.onmessage = (event) => {
      lastFrame = JSON.parse(event.data);
      receivedAt = performance.now();
      frames += 1;
      render();
    };
    socket.onclose = () => {
      socket = null;
      const delay = retryDelay * (0.8 + 0.4 * Math.random());
      retryDelay = Math.min(retryDelay * 2, 5000);
      showStatus(`reconnecting in ${(delay / 1000).toFixed(1)} s`);
      setTimeout(connect, delay);
    };
  }

  function connected() {
    return socket !== null && socket.readyState === WebSocket.OPEN && lastFrame !== null &&
      performance.now() - receivedAt < STALE_AFTER_MS;
  }

  function showStatus(reason) {
    const status = $("#status");
    const up = connected();
    status.dataset.connected = String(up);
    status.dataset.frames = String(frames);
    status.className = "status " + (up ? "up" : "down");
    status.textContent = up ? "live feed" : reason || "no data";
    $("#offline").classList.toggle("hidden", up || lastFrame === null);
    document.body.classList.toggle("offline", !up);
  }

  // ------------------------------------------------------------------- rendering

  function render() {
    showStatus();
    if (!lastFrame) return;
    const { overview, detail } = lastFrame.view;
    renderHeader(overview);
    const symbol = selected();
    $("#overview-section").classList.toggle("hidden", symbol !== null);
    $("#detail").classList.toggle("hidden", symbol === null);
    if (symbol === null) {
      renderOverview(overview);
    } else {
      renderDetail(symbol, detail && detail.symbol === symbol ? detail : null);
    }
  }

  function renderHeader(overview) {
    const redis = $("#redis");
    redis.textContent = overview.redis.connected ? "redis connected" : "redis down" +
      (overview.redis.error ? ": " + overview.redis.error : "");
    redis.className = "pill " + (overview.redis.connected ? "ok" : "bad");
    redis.dataset.connected = String(overview.redis.connected);
    const role = $("#role");
    role.classList.toggle("hidden", !overview.role);
    role.textContent = overview.role ? "role " + overview.role : "";
    $("#version").textContent = "v" + overview.version + (overview.workers ? ` · ${overview.workers.length} workers` : "");
  }

  function renderOverview(overview) {
    const body = $("#overview tbody");
    body.replaceChildren();
    for (const row of overview.symbols) {
      const tr = body.insertRow();
      tr.dataset.symbol = row.symbol;
      tr.dataset.state = row.state;
      tr.onclick = () => { location.hash = "#" + row.symbol; };
      const link = document.createElement("a");
      link.href = "#" + row.symbol;
      link.textContent = row.symbol;
      tr.insertCell().append(link);
      cell(tr, row.state, "state state-" + row.state);
      cell(tr, row.live ? age(row.updated_ms) : "–", "num age").dataset.updated = text(row.updated_ms);
      cell(tr, text(row.best_bid), "num bid");
      cell(tr, text(row.best_ask), "num ask");
      cell(tr, fixed(row.spread_bps, 2), "num");
      cell(tr, text(row.last_price), "num");
      cell(tr, compact(row.volume_24h), "num");
      const change = row.change_pct_24h;
      cell(tr, change === null ? "–" : (change > 0 ? "+" : "") + change.toFixed(2) + "%",
        "num " + (change > 0 ? "up" : change < 0 ? "down" : ""));
      cell(tr, fixed(row.update_rate, 1), "num");
      cell(tr, text(row.last_reset), "muted");
    }
    const lines = $("#connections tbody");
    lines.replaceChildren();
    for (const line of overview.connections) {
      const tr = lines.insertRow();
      tr.dataset.connected = String(line.connected);
      cell(tr, line.name);
      cell(tr, line.connected ? "up" : "down", line.connected ? "up" : "down");
      cell(tr, text(line.symbols), "num");
      cell(tr, text(line.connects), "num");
      cell(tr, text(line.last_disconnect), "muted");
    }
  }

  function renderDetail(symbol, detail) {
    const section = $("#detail");
    const live = detail !== null && detail.live && connected();
    section.dataset.symbol = symbol;
    section.dataset.state = detail ? detail.state : "unknown";
    section.dataset.live = String(live);
    section.dataset.updateId = detail && detail.live ? String(detail.last_update_id) : "0";
    $("#detail-symbol").textContent = symbol;
    const state = $("#detail-state");
    state.textContent = detail ? detail.state : "…";
    state.className = "state state-" + (detail ? detail.state : "unknown");
    const banner = $("#banner");
    let why = null;
    if (!detail) why = `${symbol}: no data from the service yet (not a symbol it serves?)`;
    else if (!detail.live) {
      why = `${symbol} book is ${detail.state.toUpperCase()}: not live, no levels are shown` +
        (detail.last_reset ? ` (last reset: ${detail.last_reset})` : "");
    } else if (!connected()) why = "not connected to the service: the book below is not current";
    banner.textContent = why || "";
    banner.classList.toggle("hidden", why === null);
    $("#book-age").textContent = detail && detail.live ? "changed " + age(detail.updated_ms) + " ago" : "";
    renderLadder(detail && detail.live ? detail : null);
    drawDepth(detail && detail.live ? detail : null);
    renderTape(detail);
    renderStats(detail);
  }

  function renderLadder(detail) {
    const body = $("#ladder tbody");
    body.replaceChildren();
    if (!detail) return;
    const bids = detail.bids, asks = detail.asks;
    const largest = Math.max(1e-12, ...bids.map((l) => l[1]), ...asks.map((l) => l[1]));
    const rows = Math.max(bids.length, asks.length);
    for (let i = 0; i < rows; i++) {
      const tr = body.insertRow();
      const bid = bids[i], ask = asks[i];
      const bar = (td, qty, side) => {
        const span = document.createElement("span");
        span.className = "bar";
        span.style.width = (100 * qty / largest).toFixed(1) + "%";
        td.classList.add("bar-" + side);
        td.prepend(span);
      };
      const bidQty = cell(tr, bid ? text(bid[1]) : "", "num");
      const bidPrice = cell(tr, bid ? text(bid[0]) : "", "num bid");
      const askPrice = cell(tr, ask ? text(ask[0]) : "", "num ask");
      const askQty = cell(tr, ask ? text(ask[1]) : "", "num");
      if (bid) {
        bar(bidQty, bid[1], "bid");
        bidPrice.dataset.price = String(bid[0]);
        bidPrice.dataset.qty = String(bid[1]);
      }
      if (ask) {
        bar(askQty, ask[1], "ask");
        askPrice.dataset.price = String(ask[0]);
        askPrice.dataset.qty = String(ask[1]);
      }
    }
  }

  function drawDepth(detail) {
    const canvas = $("#depth");
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, pad = 24;
    ctx.clearRect(0, 0, w, h);
    if (!detail || !detail.bids.length || !detail.asks.length) {
      ctx.fillStyle = "#7d8894";
      ctx.fillText("no live book", w / 2 - 30, h / 2);
      return;
    }
    const cumulative = (levels) => {
      let total = 0;
      return levels.map(([price, qty]) => [price, (total += qty)]);
    };
    const bids = cumulative(detail.bids), asks = cumulative(detail.asks);
    const low = bids[bids.length - 1][0], high = asks[asks.length - 1][0];
    const most = Math.max(bids[bids.length - 1][1], asks[asks.length - 1][1]);
    const x = (price) => pad + (w - 2 * pad) * (price - low) / Math.max(high - low, 1e-12);
    const y = (size) => h - pad - (h - 2 * pad) * size / most;
    const side = (points, stroke, fill) => {
      ctx.beginPath();
      ctx.moveTo(x(points[0][0]), y(0));
      let previous = 0;
      for (const [price, size] of points) {
        ctx.lineTo(x(price), y(previous));
        ctx.lineTo(x(price), y(size));
        previous = size;
      }
      ctx.lineTo(x(points[points.length - 1][0]), y(0));
      ctx.closePath();
      ctx.fillStyle = fill;
      ctx.fill();
      ctx.strokeStyle = stroke;
      ctx.stroke();
    };
    side(bids, "#2ebd85", "rgba(46,189,133,0.25)");
    side(asks, "#f0616d", "rgba(240,97,109,0.25)");
    ctx.fillStyle = "#7d8894";
    ctx.fillText(String(low), pad, h - 6);
    ctx.fillText(String(high), w - pad - ctx.measureText(String(high)).width, h - 6);
    ctx.fillText(compact(Number(most.toPrecision(4))), 2, pad - 8);
  }

  function renderTape(detail) {
    const body = $("#tape tbody");
    body.replaceChildren();
    if (!detail) return;
    for (const trade of detail.trades) {
      const tr = body.insertRow();
      tr.dataset.tradeId = String(trade.id);
      cell(tr, clock(trade.time_ms), "muted");
      cell(tr, text(trade.price), "num " + trade.side);
      cell(tr, text(trade.qty), "num");
      cell(tr, trade.side, trade.side);
    }
  }

  function renderStats(detail) {
    const body = $("#stats tbody");
    body.replaceChildren();
    if (!detail) return;
    const s = detail.stats;
    const rows = [
      ["last price", text(s.last_price)],
      ["change", s.change === null ? "–" : `${s.change} (${fixed(s.change_pct, 2)}%)`],
      ["high / low", `${text(s.high)} / ${text(s.low)}`],
      ["volume", text(s.volume)],
      ["quote volume", compact(s.quote_volume)],
      ["trades", text(s.trades)],
      ["figures from", text(s.source)],
    ];
    for (const [name, value] of rows) {
      const tr = body.insertRow();
      cell(tr, name, "muted");
      cell(tr, value, "num");
    }
  }

  setInterval(() => { if (lastFrame) render(); else showStatus(); }, 500);
  connect();
})();
