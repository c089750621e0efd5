// handoff dashboard: progressive enhancement of the server-rendered page.
// It polls /api/v1/stats to draw sparklines (inline SVG) and
// /api/v1/overview to refresh the tables; without it the page still reads.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var statsEvery = 2000, overviewEvery = 5000;

  function getJSON(path) {
    return fetch(path, {cache: "no-store", credentials: "same-origin"}).then(function (r) {
      if (!r.ok) throw new Error(path + ": " + r.status);
      return r.json();
    });
  }

  function fmt(v, unit) {
    if (unit === "ms") return (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(3)) + " ms";
    return String(v) + " " + unit;
  }

  // draw renders values into fig's .plot as an area and a line scaled to
  // their maximum, newest on the right.
  function draw(fig, values) {
    var plot = fig.querySelector(".plot"), w = 300, h = 48, max = 0, i;
    for (i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
    var step = values.length > 1 ? w / (values.length - 1) : w, d = "";
    for (i = 0; i < values.length; i++) {
      var y = max > 0 ? h - 2 - (values[i] / max) * (h - 4) : h - 2;
      d += (i ? "L" : "M") + (i * step).toFixed(1) + " " + y.toFixed(1);
    }
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    var area = document.createElementNS(SVG, "path");
    area.setAttribute("class", "area");
    area.setAttribute("d", d + "L" + w + " " + h + "L0 " + h + "Z");
    var line = document.createElementNS(SVG, "path");
    line.setAttribute("class", "line");
    line.setAttribute("d", d);
    svg.appendChild(area);
    svg.appendChild(line);
    plot.replaceChildren(svg);
    var unit = fig.dataset.unit, last = values.length ? values[values.length - 1] : 0;
    // The second in progress is partial: show the last complete one.
    if (values.length > 1) last = values[values.length - 2];
    fig.querySelector("output").textContent = fmt(last, unit);
    fig.setAttribute("aria-label", fig.querySelector("figcaption").firstChild.textContent.trim() +
      ": now " + fmt(last, unit) + ", peak " + fmt(max, unit) + " over " + values.length + " s");
  }

  function sum(a) { var s = 0; for (var i = 0; i < a.length; i++) s += a[i]; return s; }

  function text(id, v) { var el = document.getElementById(id); if (el) el.textContent = v; }

  function refreshStats() {
    return getJSON("/api/v1/stats").then(function (s) {
      document.querySelectorAll("figure.spark").forEach(function (fig) {
        draw(fig, s[fig.dataset.series] || []);
      });
      text("total-requests", sum(s.requests));
      text("total-errors", sum(s.errors));
      var hint = document.getElementById("live-hint");
      if (hint) hint.textContent = "Live: updated every " + statsEvery / 1000 + " s.";
    });
  }

  function stateOf(t, now) {
    if (t.health.state === "unhealthy") return ["unhealthy (failing checks)", "bad"];
    if (t.down_until && Date.parse(t.down_until) > now) return ["ejected until " + new Date(t.down_until).toLocaleTimeString(), "warn"];
    if (!t.healthy) return [t.health.state, "bad"];
    return ["healthy", "ok"];
  }

  function ago(ts, now) {
    var s = Math.max(0, Math.round((now - Date.parse(ts)) / 1000));
    return s < 60 ? s + "s ago" : s < 3600 ? Math.floor(s / 60) + "m" + (s % 60) + "s ago" : Math.floor(s / 3600) + "h" + Math.floor(s % 3600 / 60) + "m ago";
  }

  function refreshOverview() {
    return getJSON("/api/v1/overview").then(function (o) {
      var now = Date.now();
      (o.upstreams || []).forEach(function (u) {
        var table = document.querySelector('table[data-upstream="' + CSS.escape(u.name) + '"]');
        if (!table) return;
        var pill = table.querySelector("caption .pill");
        pill.textContent = u.healthy + "/" + u.total + " healthy";
        pill.className = "pill " + (u.healthy > 0 ? "ok" : "bad");
        u.targets.forEach(function (t) {
          var row = table.querySelector('tr[data-target="' + CSS.escape(t.address) + '"]');
          if (!row) return;
          var st = stateOf(t, now), span = document.createElement("span");
          span.className = "pill " + st[1];
          span.textContent = st[0];
          row.querySelector('[data-k="state"]').replaceChildren(span);
          var by = t.health.checked_by;
          row.querySelector('[data-k="checked_by"]').textContent = !by ? "passive only" : by === o.process.holder ? "this process" : "worker " + by;
          var lc = row.querySelector('[data-k="last_check"]');
          lc.textContent = t.health.last_result ? t.health.last_result + " " + ago(t.health.last_check, now) : "\u2014";
          if (t.health.last_error) {
            var e = document.createElement("span");
            e.className = "err";
            e.textContent = " " + t.health.last_error;
            lc.appendChild(e);
          }
          row.querySelector('[data-k="in_flight"]').textContent = t.in_flight;
          row.querySelector('[data-k="requests"]').textContent = t.requests;
          row.querySelector('[data-k="failures"]').textContent = t.failures;
        });
      });
      if (o.cache) {
        var c = o.cache, n = c.hits + c.misses;
        text("cache-ratio", (n ? 100 * c.hits / n : 0).toFixed(1) + "%");
        text("cache-hits", c.hits);
        text("cache-misses", c.misses);
        text("cache-entries", c.entries);
        text("cache-stale", c.stale_served);
        text("cache-coalesced", c.coalesced);
      }
      var st = document.getElementById("state");
      st.textContent = "state: " + o.state.backend + " " + (o.state.up ? "up" : "down") +
        (o.state.backend === "redis" ? " · " + o.state.latency_ms.toFixed(1) + " ms" : "");
      text("redis-latency", o.state.latency_ms.toFixed(1) + " ms");
      (o.fleet || []).forEach(function (m) {
        var row = document.querySelector('tr[data-member="' + CSS.escape(m.id) + '"] [data-k="beat"]');
        if (row && m.last_heartbeat) row.textContent = ago(m.last_heartbeat, now);
      });
      st.className = "pill " + (o.state.up ? "ok" : "bad");
      text("open-conns", o.process.open_conns);
    });
  }

  function loop(fn, every) {
    function tick() {
      fn().catch(function (err) {
        var hint = document.getElementById("live-hint");
        if (hint) hint.textContent = "Live update failed: " + err.message;
      }).then(function () { setTimeout(tick, every); });
    }
    tick();
  }

  loop(refreshStats, statsEvery);
  loop(refreshOverview, overviewEvery);
})();
