// ebbtide dashboard: polls /dashboard/api/series every second (live) or draws window.EBBTIDE_DATA once (report).
"use strict";
(function () {
  const KEEP = 3600;
  const FIELDS = ["t", "pt", "rps", "starting", "ready", "draining", "queue", "inflight",
    "lat_p50", "lat_p95", "ttft_p50", "ttft_p95", "cost_usd", "usd_per_h"];
  const state = { pools: {}, charts: {}, last: 0, slo: null, timeScale: 1, decisions: [], events: [], starts: [],
    phaseNames: [] };
  const $ = (sel) => document.querySelector(sel);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const hhmmss = (t) => new Date(t * 1000).toISOString().substring(11, 19);
  const fmt = (v, unit, nd) => (v === null || v === undefined ? "–" : v.toFixed(nd) + unit);

  function chartSpecs(slo) {
    const line = (label, stroke, extra) => Object.assign({ label, stroke, width: 2, spanGaps: false }, extra || {});
    const area = (label, stroke, fill) => ({ label, stroke, fill, width: 1 });
    return [
      { key: "rate", title: "Request rate (req/s)", series: [line("arrivals/s", "#2c6fbb")],
        data: (c) => [c.rps] },
      { key: "replicas", title: "Replicas by state (stacked)",
        series: [area("draining", "#c77d1a", "#f3c98b"), area("starting", "#7b5cc4", "#c9b8f0"),
          area("ready", "#1f8a4c", "#8fd4a8")],
        data: (c) => {
          const ready = c.ready, start = c.ready.map((v, i) => v + c.starting[i]);
          return [start.map((v, i) => v + c.draining[i]), start, ready];
        } },
      { key: "queue", title: "Queue depth and in flight",
        series: [line("queue", "#b00020"), line("in flight", "#6b7385", { width: 1 })],
        data: (c) => [c.queue, c.inflight] },
      { key: "latency", title: "Latency and TTFT (s) vs SLO",
        series: [line("latency P50", "#8fb3de", { width: 1 }), line("latency P95", "#2c6fbb"),
          line("TTFT P95", "#1f8a4c"),
          line("SLO latency P95", "#b00020", { dash: [6, 4], width: 1 }),
          line("SLO TTFT P95", "#e07a8b", { dash: [2, 3], width: 1 })],
        data: (c) => [c.lat_p50, c.lat_p95, c.ttft_p95, c.t.map(() => slo.latency_p95_s),
          c.t.map(() => slo.ttft_p95_s)] },
      { key: "cost", title: "Cost so far ($)", series: [line("cost $", "#c77d1a")], data: (c) => [c.cost_usd] },
    ];
  }

  function ensurePool(name) {
    if (state.charts[name]) return state.charts[name];
    const box = el("section", "pool");
    box.dataset.pool = name;
    box.appendChild(el("h2", null, "pool " + name));
    const stats = el("div", "stats");
    box.appendChild(stats);
    const grid = el("div", "charts");
    box.appendChild(grid);
    $("#pools").appendChild(box);
    const entry = { stats, plots: [] };
    for (const spec of chartSpecs(state.slo)) {
      const holder = el("div", "chart");
      holder.dataset.chart = spec.key;
      holder.appendChild(el("div", "title", spec.title));
      grid.appendChild(holder);
      const width = Math.max(300, holder.clientWidth - 10);
      const opts = { width, height: 170, series: [{}].concat(spec.series), scales: { x: { time: true } },
        axes: [{}, { size: 48 }], legend: { live: false } };
      const plot = new uPlot(opts, [[]].concat(spec.series.map(() => [])), holder);
      entry.plots.push({ spec, plot, holder });
    }
    state.charts[name] = entry;
    return entry;
  }

  function append(name, cols) {
    const have = state.pools[name] || (state.pools[name] = Object.fromEntries(FIELDS.map((f) => [f, []])));
    for (const f of FIELDS) {
      const arr = have[f].concat(cols[f] || cols.t.map(() => null));
      have[f] = arr.length > KEEP ? arr.slice(arr.length - KEEP) : arr;
    }
  }

  function drawPool(name) {
    const c = state.pools[name];
    const entry = ensurePool(name);
    const n = c.t.length;
    for (const { spec, plot, holder } of entry.plots) {
      plot.setData([c.t].concat(spec.data(c)));
      holder.dataset.points = String(n);
    }
    const last = (f) => (n ? c[f][n - 1] : null);
    const peak = Math.max(0, ...c.rps);
    entry.stats.replaceChildren(
      ...[["rate now", fmt(last("rps"), "/s", 2)], ["peak rate", fmt(peak, "/s", 2)],
        ["replicas ready", fmt(last("ready"), "", 0)], ["starting", fmt(last("starting"), "", 0)],
        ["queue", fmt(last("queue"), "", 0)], ["P95 latency", fmt(last("lat_p95"), " s", 2)],
        ["P95 TTFT", fmt(last("ttft_p95"), " s", 2)], ["cost so far", fmt(last("cost_usd"), "", 4)],
        ["$/hour now", fmt(last("usd_per_h"), "", 3)]].map(([k, v]) => {
        const s = el("span", null, k + " ");
        s.appendChild(el("b", null, v));
        return s;
      }));
    document.body.dataset.maxRps = String(Math.max(peak, Number(document.body.dataset.maxRps || 0)));
  }

  function drawLists() {
    const dl = $("#decisions");
    dl.replaceChildren(...state.decisions.slice().reverse().map((d) => {
      const li = el("li", d.direction === "out" || d.direction === "in" ? d.direction : "hold");
      li.appendChild(el("time", null, hhmmss(d.at) + (state.timeScale !== 1 ? " (policy " +
        hhmmss(d.policy_at).substring(0, 5) + ")" : "")));
      li.appendChild(document.createTextNode(d.pool + ": " + d.text));
      return li;
    }));
    const ev = $("#events");
    ev.replaceChildren(...state.events.slice().reverse().map((e) => {
      const li = el("li", e.kind === "failed" ? "failed" : "");
      li.appendChild(el("time", null, hhmmss(e.at)));
      li.appendChild(document.createTextNode(`${e.pool} ${e.replica_id || "-"} ${e.kind}: ${e.detail}`));
      return li;
    }));
    document.body.dataset.decisions = String(state.decisions.length);
    document.body.dataset.events = String(state.events.length);
  }

  function drawStarts() {
    const names = state.phaseNames;
    $(".starts").hidden = state.starts.length === 0;  // e.g. a saved report: no live starts
    const head = el("tr");
    for (const h of ["pool", "replica", "start", ...names, "total"]) {
      head.appendChild(el("th", null, h.replace(/_/g, " ")));
    }
    $("#starts thead").replaceChildren(head);
    $("#starts tbody").replaceChildren(...state.starts.slice().reverse().map((s) => {
      const tr = el("tr", s.kind.startsWith("wake") ? "wake" : "");
      for (const v of [s.pool, s.replica_id, s.kind]) tr.appendChild(el("td", null, v));
      let total = 0;
      for (const n of names) {
        const v = s.phases[n];
        total += v || 0;
        tr.appendChild(el("td", "num", v === undefined ? "-" : v.toFixed(2)));
      }
      tr.appendChild(el("td", "num", total.toFixed(2)));
      return tr;
    }));
    document.body.dataset.starts = String(state.starts.length);
  }

  function ingest(payload) {
    state.slo = payload.slo;
    state.timeScale = payload.time_scale || 1;
    for (const [name, cols] of Object.entries(payload.pools || {})) {
      if (!cols.t || !cols.t.length) continue;
      append(name, cols);
      state.last = Math.max(state.last, cols.t[cols.t.length - 1]);
    }
    state.decisions = payload.decisions || [];
    state.events = payload.events || [];
    state.starts = payload.starts || [];
    state.phaseNames = payload.phase_names || [];
    for (const name of Object.keys(state.pools)) drawPool(name);
    drawLists();
    drawStarts();
    const drawn = document.querySelectorAll(".chart[data-points]:not([data-points='0'])").length;
    document.body.dataset.chartsDrawn = String(drawn);
    if (payload.policy_now && state.timeScale !== 1) {
      $("#clock").textContent = "policy clock " + hhmmss(payload.policy_now) + " UTC (×" + state.timeScale + ")";
    }
  }

  async function poll() {
    try {
      const resp = await fetch("/dashboard/api/series?since=" + state.last, { credentials: "same-origin" });
      if (resp.status === 401) {
        $("#status").textContent = "unauthorized: open /dashboard?token=<admin token>";
        return;
      }
      ingest(await resp.json());
      $("#status").textContent = "live · updated " + new Date().toLocaleTimeString();
    } catch (err) {
      $("#status").textContent = "gateway unreachable, retrying";
    } finally {
      setTimeout(poll, 1000);
    }
  }

  window.addEventListener("resize", () => {
    for (const entry of Object.values(state.charts)) {
      for (const { plot, holder } of entry.plots) plot.setSize({ width: Math.max(300, holder.clientWidth - 10),
        height: 170 });
    }
  });

  if (window.EBBTIDE_DATA) {
    ingest(window.EBBTIDE_DATA);
    $("#status").textContent = window.EBBTIDE_DATA.title || "report";
  } else {
    poll();
  }
})();
