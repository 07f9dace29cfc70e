/// `GET /` for a browser: one self-contained page (no CDN, no external font or script: it must work
/// on a network without internet) with a form for every served model.  The model list is rendered
/// here, so it reads without JavaScript; the forms are built by the script from the same data.
enum IndexPage {
    /// The page for these models (`keyed`: keys are on and the request carried none, so the list
    /// is fetched by the script once a key is entered).
    static func render(models: [JSON], keyed: Bool, version: String) -> String {
        var list = ""
        for m in models {
            let name = HTML.escape(m["name"]?.stringValue ?? "")
            let summary = HTML.escape(m["summary"]?.stringValue ?? "")
            list +=
                "<li><a href=\"#m-\(name)\"><code>\(name)</code></a> <span class=\"kind\">\(HTML.escape(m["kind"]?.stringValue ?? ""))</span> \(summary)</li>\n"
        }
        if models.isEmpty {
            list =
                keyed
                ? "<li>This server needs an API key: enter it above to see the models it lets you use.</li>"
                : "<li>No models are served.</li>"
        }
        // "</" inside the JSON cannot end the script element: every "/" is written "\/".
        let data = String(decoding: JSON.array(models).serialized(), as: UTF8.self)
            .split(separator: "/", omittingEmptySubsequences: false).joined(separator: "\\/")
        return HTML.fill(
            template,
            HTML.common.merging([
                "VERSION": HTML.escape(version), "MODEL_LIST": list, "MODEL_DATA": data,
                "KEYED": keyed ? "true" : "false"
            ]) { $1 })
    }

    static let template = #"""
        <!doctype html>
        <html lang="en">
        <head>
        {{HEAD}}
        <title>mserve</title>
        <style>
        {{BASE_STYLE}}label { font-weight: 600; display: block; margin: .5rem 0 .2rem; }
        input[type=text], input[type=number], input[type=password], textarea { width: 100%; padding: .45rem; border: 1px solid var(--line); border-radius: 6px; font: inherit; }
        textarea { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; min-height: 6rem; }
        button { font: inherit; padding: .45rem 1rem; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; margin: .6rem .5rem 0 0; }
        button.secondary { background: #fff; color: var(--accent); }
        button:disabled { opacity: .45; cursor: default; }
        :focus-visible { outline: 3px solid #f5a623; outline-offset: 2px; }
        section.model { border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem 1rem; margin: 1rem 0; }
        section.model h2 { font-size: 1.05rem; margin: 0 0 .25rem; }
        .kind { font-size: .8rem; color: var(--muted); border: 1px solid var(--line); border-radius: 4px; padding: 0 .3rem; }
        .muted { color: var(--muted); }
        .stats { margin-top: .6rem; font-size: .9rem; }
        .stats.bad { color: var(--bad); }
        .stats.good { color: var(--ok); }
        pre.out:empty { display: none; }
        pre.out { background: var(--bg2); padding: .6rem; border-radius: 6px; white-space: pre-wrap; word-break: break-word; max-height: 22rem; overflow: auto; margin: .5rem 0 0; }
        .check { display: inline-flex; gap: .35rem; align-items: center; font-weight: normal; margin-right: 1rem; }
        table.heat { border-collapse: collapse; margin-top: .6rem; font-size: .8rem; }
        table.heat td, table.heat th { border: 1px solid var(--line); padding: .2rem .35rem; text-align: center; min-width: 3rem; }
        #keybox { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
        #keybox input { width: 18rem; max-width: 100%; }
        .turns { margin: .5rem 0; display: flex; flex-direction: column; gap: .4rem; }
        .turn { padding: .45rem .6rem; border-radius: 8px; white-space: pre-wrap; word-break: break-word; max-width: 92%; }
        .turn.user { align-self: flex-end; background: var(--accent); color: #fff; }
        .turn.assistant { align-self: flex-start; background: var(--bg2); }
        .params { display: flex; gap: .75rem; flex-wrap: wrap; }
        .params > div { flex: 1 1 7rem; }
        @media (max-width: 600px) { main { padding: .6rem; } header { padding: .6rem; } #keybox input { width: 100%; } }
        </style>
        </head>
        <body>
        <header>
          <h1>mserve <span class="muted" style="font-weight:normal;font-size:.85rem">{{VERSION}}</span></h1>
          <nav aria-label="Pages"><a href="/">Models</a><a href="/status">Status</a></nav>
          <form id="keybox" onsubmit="return false">
            <label for="apikey" style="margin:0">API key</label>
            <input id="apikey" type="password" autocomplete="off" placeholder="only if this server needs one">
            <span id="keystate" class="muted" aria-live="polite"></span>
          </form>
        </header>
        <main>
          <h2 style="font-size:1.1rem">Models</h2>
          <ul id="model-list">
        {{MODEL_LIST}}  </ul>
          <noscript><p>The forms below need JavaScript.  Without it, POST JSON to <code>/NAME</code>, for example
          <code>curl -d '{"cal_number": 1}' http://HOST/demo</code>.</p></noscript>
          <div id="forms"></div>
        </main>
        <script id="model-data" type="application/json">{{MODEL_DATA}}</script>
        <script>
        "use strict";
        const KEYED = {{KEYED}};
        const $ = (tag, attrs = {}, ...kids) => {
          const e = document.createElement(tag);
          for (const [k, v] of Object.entries(attrs)) {
            if (k === "text") e.textContent = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
          }
          for (const k of kids) e.append(k);
          return e;
        };
        const keyInput = document.getElementById("apikey");
        keyInput.value = sessionStorage.getItem("mserve-key") || "";
        function authHeaders() {
          const k = keyInput.value.trim();
          return k ? { "Authorization": "Bearer " + k } : {};
        }
        let loadedKey = null;
        keyInput.addEventListener("change", () => {
          const k = keyInput.value.trim();
          if (k) sessionStorage.setItem("mserve-key", k); else sessionStorage.removeItem("mserve-key");
          document.getElementById("keystate").textContent = k ? "kept for this tab only" : "";
          // (A blur fires change again: the forms are rebuilt only for a new key.)
          if (KEYED && k !== loadedKey) loadModels();
        });

        // Errors in plain words: OpenAI's shape ({"error": {"message"}}) or mserve's ({"error": "..."}).
        function errorText(status, body) {
          let msg = "";
          try { const j = JSON.parse(body); msg = (j.error && (j.error.message || j.error)) || j.message || ""; } catch (_) { msg = body.slice(0, 300); }
          const names = { 400: "the input was refused", 401: "an API key is needed (enter it above)", 403: "this key may not use this model",
                          404: "not found", 413: "the request is too large", 415: "the model does not take this kind of input",
                          429: "too many requests for this key; wait a moment", 503: "the server is busy or starting; try again",
                          504: "the model took too long" };
          return `Error ${status}: ${names[status] || "the request failed"}${msg ? " (" + msg + ")" : ""}`;
        }

        function show(ui, text, cls) { ui.stats.textContent = text; ui.stats.className = "stats " + (cls || ""); }

        // Server-Sent Events read from a response's body as they arrive (EventSource cannot POST): each
        // event's data, but the closing [DONE], to `onData`.
        async function readEvents(res, onData) {
          const reader = res.body.getReader(); const dec = new TextDecoder();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            buf += dec.decode(value, { stream: true });
            let i;
            while ((i = buf.indexOf("\n\n")) >= 0) {
              const event = buf.slice(0, i); buf = buf.slice(i + 2);
              const data = event.split("\n").filter(l => l.startsWith("data: ")).map(l => l.slice(6)).join("\n");
              if (data && data !== "[DONE]") onData(data);
            }
          }
        }

        async function send(ui, url, init, stream) {
          const t0 = performance.now();
          ui.send.disabled = true; ui.stop.disabled = !stream; ui.out.textContent = "";
          show(ui, "Sending…");
          const ctl = new AbortController(); ui.abort = ctl;
          try {
            const res = await fetch(url, { ...init, signal: ctl.signal, headers: { ...(init.headers || {}), ...authHeaders() } });
            const rid = res.headers.get("x-request-id") || "";
            if (!res.ok) {
              const body = await res.text();
              show(ui, `${errorText(res.status, body)} · recordid ${rid}`, "bad");
              return null;
            }
            if (!stream) {
              const body = await res.json();
              const ms = performance.now() - t0;
              show(ui, `${res.status} OK · recordid ${rid} · ${ms.toFixed(0)} ms`, "good");
              return { body, rid };
            }
            let pieces = 0, first = 0;
            await readEvents(res, data => {
              if (!first) first = performance.now() - t0;
              pieces++;
              ui.out.textContent += data + "\n";
              const s = (performance.now() - t0) / 1000;
              show(ui, `${res.status} streaming · recordid ${rid} · first piece ${first.toFixed(0)} ms · ${pieces} pieces · ${(pieces / s).toFixed(1)} pieces/s`);
            });
            const s = (performance.now() - t0) / 1000;
            show(ui, `${res.status} OK · recordid ${rid} · ${(s * 1000).toFixed(0)} ms · first piece ${first.toFixed(0)} ms · ${pieces} pieces · ${(pieces / s).toFixed(1)} pieces/s`, "good");
            return null;
          } catch (e) {
            if (e.name === "AbortError") show(ui, "Stopped: the server cancels the request.", "bad");
            else show(ui, "The server could not be reached (" + e.message + ").", "bad");
            return null;
          } finally {
            ui.send.disabled = false; ui.stop.disabled = true; ui.abort = null;
          }
        }

        // Inputs for a flat example ({"cal_number": 1}); a JSON editor for anything else.
        function fieldsFor(m, id) {
          const ex = m.example || {};
          const flat = Object.keys(ex).length > 0 && Object.values(ex).every(v => ["number", "string", "boolean"].includes(typeof v));
          const box = $("div");
          if (!flat) {
            box.append($("label", { for: id + "-json", text: "Input (JSON)" }),
                       $("textarea", { id: id + "-json", spellcheck: "false" }));
            box.querySelector("textarea").value = JSON.stringify(ex, null, 2);
            return { box, read: () => JSON.parse(box.querySelector("textarea").value || "{}") };
          }
          for (const [k, v] of Object.entries(ex)) {
            const fid = `${id}-f-${k}`;
            if (typeof v === "boolean") {
              box.append($("label", { class: "check", for: fid }, $("input", { id: fid, type: "checkbox", "data-key": k }), k));
              box.querySelector("#" + CSS.escape(fid)).checked = v;
            } else {
              box.append($("label", { for: fid, text: k }), $("input", { id: fid, type: typeof v === "number" ? "number" : "text", "data-key": k, value: String(v), step: "any" }));
            }
          }
          const read = () => {
            const out = {};
            for (const el of box.querySelectorAll("[data-key]")) {
              const k = el.dataset.key;
              out[k] = el.type === "checkbox" ? el.checked : el.type === "number" ? (el.value.includes(".") ? parseFloat(el.value) : parseInt(el.value, 10)) : el.value;
            }
            return out;
          };
          return { box, read };
        }

        function similarityTable(vectors, texts) {
          const norm = v => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
          const n = vectors.map(norm);
          const t = $("table", { class: "heat", "aria-label": "cosine similarity" });
          const head = $("tr", {}, $("th", { text: "" }));
          texts.forEach((_, j) => head.append($("th", { scope: "col", text: "#" + (j + 1) })));
          t.append(head);
          vectors.forEach((a, i) => {
            const row = $("tr", {}, $("th", { scope: "row", text: "#" + (i + 1), title: texts[i] }));
            vectors.forEach((b, j) => {
              const c = a.reduce((s, x, k) => s + x * b[k], 0) / (n[i] * n[j] || 1);
              const shade = Math.round(255 - Math.max(0, c) * 170);
              row.append($("td", { text: c.toFixed(2), style: `background: rgb(${shade},${shade},255)` }));
            });
            t.append(row);
          });
          return t;
        }

        // A conversation through /v1/chat/completions: the turns so far are sent each time; a streamed
        // answer grows as its chunks arrive, with the time to the first token and tokens per second.
        function chatForm(m, id, form, ui) {
          const history = [];
          const turns = $("div", { class: "turns", id: id + "-turns", "aria-live": "polite" });
          const param = (name, label, value, attrs) => {
            const el = $("input", { id: `${id}-${name}`, type: "number", value: String(value), ...attrs });
            return [$("div", {}, $("label", { for: el.id, text: label }), el), el];
          };
          const [tBox, temperature] = param("temperature", "Temperature", 0.7, { min: "0", max: "2", step: "0.1" });
          const [pBox, topP] = param("top_p", "top_p", 1, { min: "0.01", max: "1", step: "0.05" });
          const [mBox, maxTokens] = param("max_tokens", "Max tokens", 256, { min: "1", step: "1" });
          const system = $("input", { id: id + "-system", type: "text", placeholder: "optional: how the assistant should answer" });
          const message = $("textarea", { id: id + "-message", placeholder: "Your message (Enter sends, Shift+Enter for a new line)" });
          message.style.minHeight = "3.5rem";
          const streamBox = $("input", { id: id + "-stream", type: "checkbox" });
          streamBox.checked = true;
          ui.clear = $("button", { type: "button", class: "secondary", id: id + "-clear", text: "New conversation" });
          ui.clear.addEventListener("click", () => { history.length = 0; turns.replaceChildren(); show(ui, ""); });
          form.append($("label", { for: system.id, text: "System" }), system, turns, $("label", { for: message.id, text: "Message" }), message,
                      $("div", { class: "params" }, tBox, pBox, mBox),
                      $("label", { class: "check", for: streamBox.id }, streamBox, "Stream tokens as they come"));
          message.addEventListener("keydown", ev => { if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); } });
          form.addEventListener("submit", async ev => {
            ev.preventDefault();
            const text = message.value.trim();
            if (!text) { show(ui, "Write a message first.", "bad"); return; }
            const stream = streamBox.checked;
            const body = { model: m.name, stream, ...(stream ? { stream_options: { include_usage: true } } : {}),
                           temperature: Number(temperature.value), top_p: Number(topP.value),
                           max_tokens: parseInt(maxTokens.value, 10),
                           messages: [...(system.value.trim() ? [{ role: "system", content: system.value.trim() }] : []), ...history,
                                      { role: "user", content: text }] };
            const mine = $("div", { class: "turn user", text: text });
            const answer = $("div", { class: "turn assistant", text: "…" });
            turns.append(mine, answer);
            message.value = "";
            const t0 = performance.now();
            ui.send.disabled = true; ui.stop.disabled = !stream; show(ui, "Sending…");
            const ctl = new AbortController(); ui.abort = ctl;
            let reply = "", tokens = 0, first = 0, rid = "";
            const rate = () => tokens > 1 ? ((tokens - 1) / ((performance.now() - t0 - first) / 1000)).toFixed(1) : "–";
            try {
              const res = await fetch("/v1/chat/completions", { method: "POST", signal: ctl.signal,
                headers: { "Content-Type": "application/json", ...authHeaders() }, body: JSON.stringify(body) });
              rid = res.headers.get("x-request-id") || "";
              if (!res.ok) { throw { status: res.status, body: await res.text() }; }
              if (!stream) {
                const j = await res.json();
                reply = j.choices[0].message.content;
                answer.textContent = reply;
                const t = j.timings || {};
                show(ui, `200 OK · recordid ${rid} · ${j.usage.completion_tokens} tokens · ${t.predicted_per_second ?? "–"} tokens/s · first token ${(t.prompt_ms ?? 0).toFixed(0)} ms`, "good");
              } else {
                let finish = "", counted = null;
                await readEvents(res, data => {
                  const chunk = JSON.parse(data);
                  if (chunk.error) throw { status: 200, body: data };
                  if (chunk.usage) counted = chunk.usage.completion_tokens;
                  const c = chunk.choices && chunk.choices[0];
                  if (!c) return;
                  if (c.delta && c.delta.content) {
                    if (!tokens) first = performance.now() - t0;
                    tokens++;
                    reply += c.delta.content;
                    answer.textContent = reply;
                  }
                  if (c.finish_reason) finish = c.finish_reason;
                  show(ui, `200 streaming · recordid ${rid} · first token ${first.toFixed(0)} ms · ${tokens} tokens · ${rate()} tokens/s`);
                });
                // The usage counts the end-of-turn token too, which has no text.
                show(ui, `200 OK · recordid ${rid} · first token ${first.toFixed(0)} ms · ${counted ?? tokens} tokens · ${rate()} tokens/s · ${finish}`, "good");
              }
              history.push({ role: "user", content: text }, { role: "assistant", content: reply });
            } catch (e) {
              if (e.name === "AbortError") {
                show(ui, "Stopped: the server cancels the request.", "bad");
                if (reply) history.push({ role: "user", content: text }, { role: "assistant", content: reply });
              } else {
                answer.remove(); mine.remove(); message.value = text;
                show(ui, e.status ? `${errorText(e.status, e.body)} · recordid ${rid}` : "The server could not be reached (" + e.message + ").", "bad");
              }
            } finally {
              ui.send.disabled = false; ui.stop.disabled = true; ui.abort = null;
            }
          });
        }

        function formFor(m) {
          const id = "m-" + m.name;
          const sec = $("section", { class: "model", id, "aria-labelledby": id + "-h" });
          sec.append($("h2", { id: id + "-h" }, $("code", { text: m.name }), " ", $("span", { class: "kind", text: m.kind })),
                     $("p", { class: "muted", text: m.summary || "" }));
          // A model file's own description: architecture, quantization, size, context.
          const d = m.details;
          if (d) sec.append($("p", { class: "muted", id: id + "-details", text: [d.name, d.architecture, d.quantization,
            d.parameters && (d.parameters >= 1e9 ? (d.parameters / 1e9).toFixed(1) + " B" : Math.round(d.parameters / 1e6) + " M") + " parameters",
            d.context && "context " + d.context].filter(Boolean).join(" · ") }));
          const ui = { out: $("pre", { class: "out", id: id + "-out", "aria-live": "polite" }), stats: $("div", { class: "stats", id: id + "-stats", role: "status" }) };
          const form = $("form", { novalidate: "" });
          ui.send = $("button", { type: "submit", id: id + "-send", text: "Send" });
          ui.stop = $("button", { type: "button", class: "secondary", id: id + "-stop", text: "Stop", disabled: "" });
          ui.stop.addEventListener("click", () => ui.abort && ui.abort.abort());
          if (m.kind === "chat") {
            chatForm(m, id, form, ui);
          } else if (m.kind === "embeddings") {
            form.append($("label", { for: id + "-texts", text: "Texts, one per line" }), $("textarea", { id: id + "-texts" }));
            form.querySelector("textarea").value = "The cat sits on the mat.\nA kitten rests on a rug.\nStock markets fell sharply today.";
            form.addEventListener("submit", async ev => {
              ev.preventDefault();
              const texts = form.querySelector("textarea").value.split("\n").map(s => s.trim()).filter(Boolean);
              const r = await send(ui, "/v1/embeddings", { method: "POST", headers: { "Content-Type": "application/json" },
                                                          body: JSON.stringify({ model: m.name, input: texts }) }, false);
              if (!r) return;
              const vectors = r.body.data.map(d => d.embedding);
              ui.out.textContent = `${vectors.length} vectors of ${vectors[0] ? vectors[0].length : 0} dimensions; cosine similarity:`;
              ui.out.append(similarityTable(vectors, texts));
            });
          } else {
            const fields = fieldsFor(m, id);
            form.append(fields.box);
            let file = null;
            if (m.kind === "upload") {
              form.append($("label", { for: id + "-file", text: "File" }), $("input", { id: id + "-file", type: "file" }));
              file = form.querySelector("input[type=file]");
            }
            const streamBox = $("input", { id: id + "-stream", type: "checkbox" });
            form.append($("label", { class: "check", for: id + "-stream" }, streamBox, "Stream the answer"));
            form.addEventListener("submit", async ev => {
              ev.preventDefault();
              let input;
              try { input = fields.read(); } catch (e) { show(ui, "The input is not valid JSON: " + e.message, "bad"); return; }
              const stream = streamBox.checked;
              let init;
              if (file && file.files.length) {
                const fd = new FormData();
                for (const [k, v] of Object.entries(input)) fd.append(k, typeof v === "string" ? v : JSON.stringify(v));
                fd.append("file", file.files[0]);
                init = { method: "POST", body: fd, headers: stream ? { "Accept": "text/event-stream" } : {} };
              } else {
                if (stream) input.stream = true;
                init = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(input) };
              }
              const r = await send(ui, "/" + encodeURIComponent(m.name), init, stream);
              if (r) ui.out.textContent = JSON.stringify(r.body, null, 2);
            });
          }
          form.append(ui.send, ui.stop);
          if (ui.clear) form.append(ui.clear);
          sec.append(form, ui.stats, ui.out);
          return sec;
        }

        function render(models) {
          const list = document.getElementById("model-list"), forms = document.getElementById("forms");
          forms.replaceChildren(...models.map(formFor));
          if (KEYED) list.replaceChildren(...models.map(m => $("li", {}, $("a", { href: "#m-" + m.name }, $("code", { text: m.name })), " ",
                                                                  $("span", { class: "kind", text: m.kind }), " " + (m.summary || ""))));
        }

        async function loadModels() {
          loadedKey = keyInput.value.trim();
          const res = await fetch("/", { headers: { "Accept": "application/json", ...authHeaders() } });
          if (!res.ok) { document.getElementById("keystate").textContent = errorText(res.status, await res.text()); return; }
          render((await res.json()).models);
        }

        if (!KEYED) render(JSON.parse(document.getElementById("model-data").textContent));
        else if (keyInput.value) loadModels();
        </script>
        </body>
        </html>
        """#
}

enum HTML {
    /// What both pages share: the head's meta lines (no favicon request) and the base style.
    static let common: [String: String] = [
        "HEAD": #"<meta charset="utf-8">\#n<meta name="viewport" content="width=device-width, initial-scale=1">\#n<link rel="icon" href="data:,">"#,
        "BASE_STYLE": """
        :root { --fg: #1b1f24; --muted: #59636e; --line: #d1d9e0; --accent: #0b62c4; --bad: #b42318; --ok: #1a7f37; --bg2: #f6f8fa; }
        * { box-sizing: border-box; }
        body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0; }
        header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; padding: .75rem 1rem; border-bottom: 1px solid var(--line); background: var(--bg2); }
        header h1 { font-size: 1.2rem; margin: 0; }
        header nav a { margin-right: 1rem; color: var(--accent); }
        main { max-width: 60rem; margin: 0 auto; padding: 1rem; }

        """
    ]

    /// The template with each {{NAME}} replaced by its value (an unknown name stays as it is).
    static func fill(_ template: String, _ values: [String: String]) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstRange(of: "{{"), let close = rest[open.upperBound...].firstRange(of: "}}") {
            let name = String(rest[open.upperBound..<close.lowerBound])
            out += rest[..<open.lowerBound]
            out += values[name] ?? "{{\(name)}}"
            rest = rest[close.upperBound...]
        }
        return out + rest
    }

    /// Text for HTML: the five characters that could end an element or an attribute.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
