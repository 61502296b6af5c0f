/* Overdrive dashboard: draws the charts of the server-rendered pages with uPlot (vendored) and
 * keeps the overview live. Page data comes from <script id="page-data" type="application/json">;
 * fresh data from /dashboard/api/… on the same origin. Text from the service (ids, names) is only
 * ever written with textContent, never as HTML.
 *
 * Every chart host (.chart) gets data-points: the number of non-null values it draws (0: the
 * placeholder "no data yet"); the browser test reads it.
 */
(function () {
  "use strict";

  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563",
                "#65a30d", "#7c3aed", "#0d9488", "#b45309", "#1d4ed8"];
  var HISTORY_POINTS = 720;
  var charts = {};

  function byId(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function num(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (typeof v !== "number") return String(v);
    var d = digits === undefined ? 3 : digits;
    return Math.abs(v) >= 1000 ? v.toFixed(0) : String(Number(v.toFixed(d)));
  }

  function timeText(epoch) {
    if (!epoch) return "–";
    var d = new Date(epoch * 1000);
    return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function countPoints(data) {
    var n = 0;
    for (var s = 1; s < data.length; s++) {
      for (var i = 0; i < data[s].length; i++) if (data[s][i] !== null && data[s][i] !== undefined) n++;
    }
    return n;
  }

  function hostWidth(host) { return Math.max(320, (host.clientWidth || 600) - 14); }

  /* A chart in `id`: x values and [{label, values}] series. opts: time (x is epoch seconds),
   * bars, stepped, categories (x labels for x = 0..n-1), points, yRange, draw (a draw hook). */
  function chart(id, x, series, opts) {
    var host = byId(id);
    if (!host) return null;
    opts = opts || {};
    var data = [x].concat(series.map(function (s) { return s.values; }));
    var points = x.length ? countPoints(data) : 0;
    if (charts[id]) { charts[id].destroy(); delete charts[id]; }
    host.textContent = "";
    host.appendChild(el("div", "chart-title", host.dataset.title || ""));
    host.dataset.points = String(points);
    if (!points) {
      host.appendChild(el("div", "placeholder", opts.empty || "no data yet"));
      return null;
    }
    var cats = opts.categories;
    var uSeries = [{ label: opts.xLabel || (opts.time ? "time" : "x"),
                     value: cats ? function (u, v) { return v === null ? "–" : (cats[v] || ""); } : undefined }];
    series.forEach(function (s, i) {
      var color = s.color || COLORS[i % COLORS.length];
      var one = { label: s.label, stroke: color, width: s.width || 1.5, spanGaps: false,
                  value: function (u, v) { return num(v, 4); },
                  points: { show: opts.points !== undefined ? opts.points : x.length <= 40, size: 5 } };
      if (opts.bars && series.length === 1) {  // several series of bars would overlap: those get points
        one.fill = color + "99";
        one.paths = uPlot.paths.bars({ size: [0.6, 80] });
        one.points = { show: false };
      } else if (opts.stepped) {
        one.paths = uPlot.paths.stepped({ align: 1 });
      }
      if (s.hidden) { one.stroke = "transparent"; one.paths = function () { return null; }; one.points = { show: false }; }
      uSeries.push(one);
    });
    var axes = [{}, { size: 60 }];
    if (cats) axes[0] = { values: function (u, splits) { return splits.map(function (v) { return Number.isInteger(v) ? (cats[v] || "") : ""; }); },
                          splits: function () { return cats.map(function (_, i) { return i; }); }, rotate: 0, size: 40 };
    var uopts = {
      width: hostWidth(host), height: opts.height || 230,
      scales: { x: { time: !!opts.time, range: xRange(x, cats, opts) }, y: { range: yRange(opts) } },
      series: uSeries, axes: axes, legend: { live: true },
      cursor: { drag: { x: !cats, y: false } },
      hooks: opts.draw ? { draw: [opts.draw] } : {},
    };
    var u = new uPlot(uopts, data, host);
    charts[id] = u;
    return u;
  }

  function xRange(x, cats, opts) {
    if (cats) return function () { return [-0.5, cats.length - 0.5]; };
    if (x.length === 1) return function () { return [x[0] - (opts.time ? 60 : 1), x[0] + (opts.time ? 60 : 1)]; };
    return undefined;
  }

  /* Bars, rates and shares start at zero; opts.yRange fixes the range. */
  function yRange(opts) {
    if (opts.yRange) return opts.yRange;
    if (!opts.bars && !opts.zero) return undefined;
    return function (u, min, max) {
      var lo = Math.min(0, min === null ? 0 : min), hi = Math.max(0, max === null ? 0 : max);
      return [lo, hi > lo ? hi + (hi - lo) * 0.08 : lo + 1];
    };
  }

  function replaceTable(hostId, headers, rows) {
    var host = byId(hostId);
    if (!host) return;
    var table = el("table");
    var thead = el("thead"), tr = el("tr");
    headers.forEach(function (h) { tr.appendChild(el("th", null, h)); });
    thead.appendChild(tr);
    table.appendChild(thead);
    var tbody = el("tbody");
    if (!rows.length) {
      var empty = el("tr"), td = el("td", null, "none yet");
      td.colSpan = headers.length;
      empty.appendChild(td);
      tbody.appendChild(empty);
    }
    rows.forEach(function (cells) {
      var row = el("tr");
      cells.forEach(function (c) {
        var cell = el("td", c && c.cls ? c.cls : null, c && typeof c === "object" && "text" in c ? c.text : c);
        row.appendChild(cell);
      });
      tbody.appendChild(row);
    });
    table.appendChild(tbody);
    host.textContent = "";
    host.appendChild(table);
  }

  function times() {
    document.querySelectorAll("[data-epoch]").forEach(function (node) {
      var v = parseFloat(node.dataset.epoch);
      if (v) node.textContent = timeText(v);
    });
  }

  function keysOf(objects) {
    var seen = {};
    objects.forEach(function (o) { Object.keys(o || {}).forEach(function (k) { seen[k] = true; }); });
    return Object.keys(seen).sort();
  }

  /* ------------------------------------------------------------------------- overview */

  function overview(data) {
    var history = data.history.slice();
    var interval = parseFloat(document.body.dataset.interval) || 5;

    function topRoutes(n) {
      var totals = {};
      history.forEach(function (p) {
        Object.keys(p.routes).forEach(function (r) {
          if (r.indexOf("/dashboard") >= 0 || r.indexOf("/metrics") >= 0) return;
          totals[r] = (totals[r] || 0) + p.routes[r].rps;
        });
      });
      return Object.keys(totals).sort(function (a, b) { return totals[b] - totals[a]; }).slice(0, n);
    }

    function draw() {
      var t = history.map(function (p) { return p.t; });
      chart("chart-requests", t, [
        { label: "requests/s", values: history.map(function (p) { return p.requests_per_s; }) },
        { label: "5xx/s", values: history.map(function (p) { return p.errors_per_s; }) },
      ], { time: true, zero: true });
      var routes = topRoutes(5);
      chart("chart-latency", t, routes.map(function (r) {
        return { label: r, values: history.map(function (p) { return p.routes[r] ? p.routes[r].p99 : null; }) };
      }), { time: true, zero: true, empty: "no requests yet" });
      chart("chart-errors", t, routes.map(function (r) {
        return { label: r, values: history.map(function (p) { return p.routes[r] ? p.routes[r].error_rate : null; }) };
      }), { time: true, zero: true, empty: "no requests yet" });
      var types = keysOf(history.map(function (p) { return p.signals_per_s; }));
      chart("chart-signals", t, types.map(function (k) {
        return { label: k, values: history.map(function (p) { return k in p.signals_per_s ? p.signals_per_s[k] : 0; }) };
      }), { time: true, zero: true, empty: "no signals applied yet" });
      var queue = ["signal_queue_depth", "signals_unapplied"].filter(function (g) {
        return history.some(function (p) { return g in p.gauges; });
      });
      chart("chart-queue", t, queue.map(function (g) {
        return { label: g.replace(/_/g, " "), values: history.map(function (p) { return g in p.gauges ? p.gauges[g] : null; }) };
      }), { time: true, zero: true, empty: "no signal queue in this deployment (the workers apply signals)" });
      chart("chart-lag", t, [{ label: "records behind", values: history.map(function (p) {
        var v = p.gauges.kafka_consumer_lag; return v === undefined || v < 0 ? null : v; }) }],
        { time: true, zero: true, empty: "not measured yet" });
    }

    function tables(latest) {
      replaceTable("endpoints", ["endpoint", "requests", "req/s", "P50 ms", "P95 ms", "P99 ms", "error rate"],
        latest.endpoints.map(function (e) {
          return [e.endpoint, e.requests, num(e.rps_1m), num(e.p50), num(e.p95), num(e.p99),
                  { text: num(e.error_rate_1m, 4), cls: e.error_rate_1m > 0 ? "bad" : null }];
        }));
      replaceTable("dependencies", ["dependency", "state", "detail"], Object.keys(latest.dependencies).map(function (name) {
        var c = latest.dependencies[name];
        return [name, { text: c.ok ? "ready" : "failing", cls: c.ok ? "ok" : "bad" }, c.error || c.backend || c.state || ""];
      }));
      var gauges = Object.keys(latest.gauges).map(function (g) { return [g, num(latest.gauges[g])]; });
      if (latest.catalog_items !== null && latest.catalog_items !== undefined) gauges.push(["catalog items", latest.catalog_items]);
      if (latest.sampler && latest.sampler.ticks) {
        gauges.push(["dashboard sampler, CPU ms a point", num(latest.sampler.cpu_ms_total / latest.sampler.ticks)]);
      }
      replaceTable("gauges", ["gauge", "value"], gauges);
      var updated = byId("updated");
      if (updated) updated.textContent = "Updated " + timeText(latest.now) + ".";
    }

    draw();
    tables(data);
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      var since = history.length ? history[history.length - 1].t : 0;
      fetch("/dashboard/api/overview?since=" + encodeURIComponent(since), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (latest) {
          latest.history.forEach(function (p) { history.push(p); });
          if (history.length > HISTORY_POINTS) history.splice(0, history.length - HISTORY_POINTS);
          if (latest.history.length) draw();
          tables(latest);
        })
        .catch(function (err) {
          var updated = byId("updated");
          if (updated) updated.textContent = "Refresh failed (" + err.message + "); retrying.";
        })
        .finally(function () { busy = false; });
    }, interval * 1000);
  }

  /* --------------------------------------------------------------------------- models */

  function models(data) {
    var history = data.history || [];
    var versions = history.map(function (r) { return timeText(r.fitted_at).slice(5, 16); });  // MM-DD HH:MM
    var idx = history.map(function (_, i) { return i; });
    var members = keysOf(history.map(function (r) { return r["validation_ndcg@10"]; }));
    chart("chart-ndcg", idx, members.map(function (m) {
      return { label: m, values: history.map(function (r) { var v = r["validation_ndcg@10"][m]; return v === undefined ? null : v; }) };
    }), { categories: versions, xLabel: "version fitted (UTC)", points: true, zero: true, empty: "no model version seen yet" });
    chart("chart-training", idx, [
      { label: "training seconds", values: history.map(function (r) { return r.training_seconds; }) },
    ], { categories: versions, xLabel: "version fitted (UTC)", bars: true, empty: "no training finished since this service has kept history" });

    var components = keysOf([data.configured_weights || {}, data.learned_weights || {}]);
    var blendSeries = [{ label: "configured", values: components.map(function (c) { return (data.configured_weights || {})[c] || 0; }) }];
    if (data.blend && data.blend.fitted && data.learned_weights) {
      blendSeries.push({ label: "learned", values: components.map(function (c) { return data.learned_weights[c] || 0; }) });
    }
    chart("chart-blend", components.map(function (_, i) { return i; }), blendSeries,
      { bars: blendSeries.length === 1, points: true, categories: components, xLabel: "component" });

    var decided = Object.keys(data.decided_share || {}).sort();
    chart("chart-decided", decided.map(function (_, i) { return i; }),
      [{ label: "share of rankings", values: decided.map(function (c) { return data.decided_share[c]; }) }],
      { bars: true, categories: decided, xLabel: "component", empty: "no rankings yet" });

    if (data.two_tower_curves) {
      var curves = data.two_tower_curves, keys = Object.keys(curves);
      var epochs = keys.length ? curves[keys[0]].map(function (_, i) { return i + 1; }) : [];
      chart("chart-two-tower", epochs, keys.map(function (k) { return { label: k, values: curves[k] }; }),
        { xLabel: "epoch", points: true, empty: "no epochs reported yet" });
    } else if (byId("chart-two-tower")) {
      chart("chart-two-tower", [], [], { empty: "the two-tower model reports no loss history" });
    }

    var hist = data.score_histograms || {};
    var names = Object.keys(hist).sort();
    var bounds = names.length ? hist[names[0]].buckets.concat(["> 1"]) : [];
    var labels = bounds.map(function (b) { return typeof b === "number" ? "≤ " + b : b; });
    chart("chart-scores", labels.map(function (_, i) { return i; }), names.map(function (n) {
      return { label: n, values: hist[n].counts };
    }), { categories: labels, xLabel: "score bucket", points: true, zero: true, empty: "no rankings yet" });
  }

  /* -------------------------------------------------------------------------- catalog */

  function catalog(data) {
    var lorenz = data.lorenz || { items: [], exposures: [] };
    chart("chart-lorenz", lorenz.items, [
      { label: "exposures (cumulative share)", values: lorenz.exposures },
      { label: "even exposure", values: lorenz.items.slice(), color: "#9ca3af" },
    ], { xLabel: "share of items", yRange: [0, 1], empty: "nothing served in the last hour" });
    var h = data.history || [];
    chart("chart-catalog-history", h.map(function (p) { return p.t; }), [
      { label: "coverage", values: h.map(function (p) { return p.coverage_last_hour; }) },
      { label: "exposure Gini", values: h.map(function (p) { return p.exposure_gini_last_hour; }) },
      { label: "cold share", values: h.map(function (p) { return p.cold_share_served; }) },
    ], { time: true, zero: true, empty: "no rankings yet" });
  }

  /* ------------------------------------------------------------------------- trending */

  function trending(data) {
    var items = data.items || [];
    chart("chart-trending", items.map(function (_, i) { return i + 1; }),
      [{ label: "velocity", values: items.map(function (r) { return r.velocity; }) }],
      { bars: true, xLabel: "rank", empty: "nothing trending yet" });
  }

  /* ----------------------------------------------------------------------------- user */

  function user(data) {
    var counts = (data.profile && data.profile.signal_counts) || {};
    var types = Object.keys(counts).sort();
    chart("chart-user-types", types.map(function (_, i) { return i; }),
      [{ label: "signals", values: types.map(function (k) { return counts[k]; }) }],
      { bars: true, categories: types, xLabel: "type", empty: "no signals from this user" });
    var windows = (data.realtime && data.realtime.windows) || {};
    var names = Object.keys(windows);
    chart("chart-user-windows", names.map(function (_, i) { return i; }),
      [{ label: "signals", values: names.map(function (w) { return windows[w].count; }) }],
      { bars: true, categories: names, xLabel: "window", empty: "no signals from this user" });
    var latest = (data.rankings || [])[0];
    var items = latest ? latest.items : [];
    var components = keysOf(items.map(function (i) { return i.scores; }));
    chart("chart-user-ranking", items.map(function (i) { return i.rank; }), components.map(function (c) {
      return { label: c, values: items.map(function (i) { return c in i.scores ? i.scores[c] : null; }) };
    }), { xLabel: "position", points: true, empty: "no ranking of this user since the service started" });
  }

  /* ---------------------------------------------------------------------- experiments */

  function whiskers(u) {
    var ctx = u.ctx, lows = u.data[2], highs = u.data[3];
    ctx.save();
    ctx.strokeStyle = "#1f2937";
    ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
    for (var i = 0; i < u.data[0].length; i++) {
      if (lows[i] === null || highs[i] === null) continue;
      var x = u.valToPos(u.data[0][i], "x", true), y0 = u.valToPos(lows[i], "y", true), y1 = u.valToPos(highs[i], "y", true);
      var cap = 8 * (window.devicePixelRatio || 1);
      ctx.beginPath();
      ctx.moveTo(x, y0); ctx.lineTo(x, y1);
      ctx.moveTo(x - cap, y0); ctx.lineTo(x + cap, y0);
      ctx.moveTo(x - cap, y1); ctx.lineTo(x + cap, y1);
      ctx.stroke();
    }
    ctx.restore();
  }

  function experiments(data) {
    if ((data.experiments || []).some(function (e) { return e.pending; })) {
      var waitForResults = setInterval(function () {  // results are being computed: reload once they are
        fetch("/dashboard/api/experiments", { credentials: "same-origin", cache: "no-store" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (now) {
            if (now && !now.experiments.some(function (e) { return e.pending; })) {
              clearInterval(waitForResults);
              window.location.reload();
            }
          })
          .catch(function () { /* try again at the next tick */ });
      }, 1000);
    }
    (data.experiments || []).forEach(function (entry, k) {
      var r = entry.results;
      if (!r || !r.arms || typeof r.arms !== "object" || !byId("chart-exp-" + k)) return;
      var arms = Object.keys(r.arms);
      var ctr = arms.map(function (a) { return r.arms[a].ctr || {}; });
      chart("chart-exp-" + k, arms.map(function (_, i) { return i; }), [
        { label: "CTR", values: ctr.map(function (c) { return c.value === undefined ? null : c.value; }), width: 0 },
        { label: "95 % low", values: ctr.map(function (c) { return c.ci_low === undefined ? null : c.ci_low; }), hidden: true },
        { label: "95 % high", values: ctr.map(function (c) { return c.ci_high === undefined ? null : c.ci_high; }), hidden: true },
      ], { categories: arms, xLabel: "arm", points: true, draw: whiskers, empty: "no exposures yet" });
    });
  }

  var PAGES = { overview: overview, models: models, catalog: catalog, trending: trending, user: user, experiments: experiments };

  function start() {
    times();
    var page = document.body.dataset.page;
    var source = byId("page-data");
    var data = source ? JSON.parse(source.textContent) : {};
    if (PAGES[page]) PAGES[page](data);
    window.addEventListener("resize", function () {
      Object.keys(charts).forEach(function (id) {
        var host = byId(id);
        if (host) charts[id].setSize({ width: hostWidth(host), height: charts[id].height });
      });
    });
    window.__dashboardReadyAt = performance.now();  // when every chart is drawn (the benchmark reads it)
    document.body.dataset.ready = "1";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
