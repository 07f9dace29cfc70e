/// `GET /status`: the server live, from `/status.json` every 2 seconds: workers, each model's load
/// and batches, restarts, and two small charts of the last minutes (requests per second; p50 and
/// p99 latency), drawn as SVG by the page itself.
enum StatusPage {
    static func render(version: String) -> String {
        HTML.fill(template, HTML.common.merging(["VERSION": HTML.escape(version)]) { $1 })
    }

    static let template = #"""
        <!doctype html>
        <html lang="en">
        <head>
        {{HEAD}}
        <title>mserve status</title>
        <style>
        {{BASE_STYLE}}h2 { font-size: 1.05rem; margin: 1.2rem 0 .4rem; }
        table { border-collapse: collapse; width: 100%; font-size: .9rem; }
        th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); }
        td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
        .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(16rem, 1fr)); gap: 1rem; }
        figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: .5rem .75rem; }
        figcaption { font-weight: 600; font-size: .9rem; }
        svg { width: 100%; height: 120px; display: block; }
        .muted { color: var(--muted); }
        #state.ok { color: var(--ok); } #state.bad { color: var(--bad); }
        .wrap { overflow-x: auto; }
        :focus-visible { outline: 3px solid #f5a623; outline-offset: 2px; }
        </style>
        </head>
        <body>
        <header>
          <h1>mserve status <span class="muted" style="font-weight:normal;font-size:.85rem">{{VERSION}}</span></h1>
          <nav aria-label="Pages"><a href="/">Models</a><a href="/status">Status</a></nav>
          <span id="state" role="status" aria-live="polite">loading…</span>
        </header>
        <main>
          <noscript><p>This page reads <a href="/status.json">/status.json</a> with JavaScript; that link has the same data.</p></noscript>
          <div class="charts">
            <figure><figcaption>Requests per second, last 5 minutes <span class="muted" id="rps-now"></span></figcaption><svg id="chart-rps" role="img" aria-label="requests per second over the last minutes"></svg></figure>
            <figure><figcaption>Latency (ms), <span style="color:#1a7f37">p50</span> and <span style="color:#b42318">p99</span> <span class="muted" id="lat-now"></span></figcaption><svg id="chart-latency" role="img" aria-label="latency percentiles over the last minutes"></svg></figure>
          </div>
          <h2>Workers</h2>
          <div class="wrap"><table><thead><tr><th>pid</th><th class="n">slot</th><th>state</th><th class="n">age (s)</th><th class="n">requests</th><th class="n">in flight</th></tr></thead><tbody id="workers"></tbody></table></div>
          <p class="muted" id="restarts"></p>
          <h2>Models</h2>
          <div class="wrap"><table><thead><tr><th>model</th><th class="n">requests</th><th class="n">running</th><th class="n">queued</th><th class="n">batches</th><th class="n">mean batch</th></tr></thead><tbody id="models"></tbody></table></div>
        </main>
        <script>
        "use strict";
        const NS = "http://www.w3.org/2000/svg";
        function rows(id, items, cols) {
          const body = document.getElementById(id);
          body.replaceChildren(...items.map(it => {
            const tr = document.createElement("tr");
            cols.forEach(([k, numeric]) => { const td = document.createElement("td"); td.textContent = it[k]; if (numeric) td.className = "n"; tr.append(td); });
            return tr;
          }));
        }
        // A polyline per series over the points' index, scaled to the largest value (which it returns);
        // a dot for each point, so that a lone second with requests shows too.
        function chart(id, series, colors) {
          const svg = document.getElementById(id), w = 300, h = 100;
          svg.setAttribute("viewBox", `0 0 ${w} ${h + 4}`);
          svg.setAttribute("preserveAspectRatio", "none");
          const all = series.flat().filter(v => v != null), max = Math.max(1e-9, ...all);
          const kids = [];
          series.forEach((values, i) => {
            const n = values.length; if (n < 2) return;
            const xy = values.map((v, j) => v == null ? null : [j / (n - 1) * w, h + 2 - v / max * h]);
            const line = document.createElementNS(NS, "polyline");
            line.setAttribute("points", xy.filter(Boolean).map(p => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" "));
            line.setAttribute("fill", "none"); line.setAttribute("stroke", colors[i]); line.setAttribute("stroke-width", 1.5);
            line.setAttribute("vector-effect", "non-scaling-stroke");
            kids.push(line);
            for (const p of xy) {
              if (!p) continue;
              const dot = document.createElementNS(NS, "rect");
              dot.setAttribute("x", p[0] - 0.75); dot.setAttribute("y", p[1] - 1); dot.setAttribute("width", 1.5); dot.setAttribute("height", 2); dot.setAttribute("fill", colors[i]);
              kids.push(dot);
            }
          });
          svg.replaceChildren(...kids);
          return all.length ? max : null;
        }
        const fmt = v => v >= 10 ? v.toFixed(0) : v.toPrecision(2);
        async function refresh() {
          const key = sessionStorage.getItem("mserve-key");
          try {
            const res = await fetch("/status.json", { headers: key ? { "Authorization": "Bearer " + key } : {} });
            if (!res.ok) throw new Error(`status ${res.status}`);
            const s = await res.json();
            const st = document.getElementById("state");
            st.textContent = s.draining ? "draining" : s.ready ? "ready" : "starting"; st.className = s.ready && !s.draining ? "ok" : "bad";
            rows("workers", s.workers, [["pid"], ["slot", 1], ["state"], ["age_s", 1], ["requests", 1], ["in_flight", 1]]);
            rows("models", s.models, [["name"], ["requests", 1], ["running", 1], ["queued", 1], ["batches", 1], ["mean_batch", 1]]);
            const r = Object.entries(s.restarts).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`);
            document.getElementById("restarts").textContent = "Restarts: " + (r.length ? r.join(", ") : "none");
            const pts = s.recent.points;
            const rpsMax = chart("chart-rps", [pts.map(p => p.requests)], ["#0b62c4"]);
            const latMax = chart("chart-latency", [pts.map(p => p.p50_ms), pts.map(p => p.p99_ms)], ["#1a7f37", "#b42318"]);
            const last = pts[pts.length - 1] || {};
            document.getElementById("rps-now").textContent = `now ${last.requests || 0}/s · top ${fmt(rpsMax || 0)}`;
            document.getElementById("lat-now").textContent = latMax == null ? "no requests yet" :
              (last.p99_ms != null ? `now ${last.p50_ms} / ${last.p99_ms} · ` : "") + `top ${fmt(latMax)}`;
          } catch (e) {
            const st = document.getElementById("state"); st.textContent = "cannot read /status.json (" + e.message + ")"; st.className = "bad";
          }
        }
        refresh();
        setInterval(refresh, 2000);
        </script>
        </body>
        </html>
        """#
}
