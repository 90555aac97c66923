// jaxal labeling page: plain JS, no build step. Every request carries the page's token.
"use strict";
const TOKEN = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
let S = null;          // the last state from the server
let sel = 0;           // the selected card (images first, then clusters)
let busy = false;      // a request is in flight (the 1 s refresh waits)
let chain = Promise.resolve();   // answers, undo and finish run one after another, in key order
function enqueue(fn) { chain = chain.then(fn).catch(() => {}); }
let view = "label";

function url(path) { return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN); }

async function api(path, body) {
  const opts = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify(body)};
  const r = await fetch(url(path), opts);
  const data = await r.json().catch(() => ({error: r.status + " " + r.statusText}));
  if (!r.ok) throw new Error(data.error || (r.status + " " + r.statusText));
  return data;
}

function showError(msg) {
  const e = $("error");
  e.textContent = msg || "";
  e.hidden = !msg;
}

function cards() {
  if (!S || S.phase !== "asking") return [];
  return S.images.map((it) => ({kind: "image", ...it})).concat(
    S.clusters.map((c) => ({kind: "cluster", ...c})));
}

async function refresh() {
  try {
    const s = await api("/api/state");
    render(s);
    showError(s.phase === "error" ? s.message : "");
  } catch (e) { showError("cannot reach the server: " + e.message); }
}

function keyOf(s) { return s ? [s.phase, s.round, (s.images || []).length, (s.clusters || []).length].join("/") : ""; }

function render(s) {
  const rebuild = keyOf(s) !== keyOf(S);
  S = s;
  const p = $("progress");
  if (s.phase === "asking") {
    p.textContent = `round ${s.round + 1} of ${s.rounds} · ${s.answered} of ${s.total} answered`;
  } else if (s.phase === "training") {
    p.textContent = `round ${s.round !== undefined ? s.round : ""} · working`;
  } else if (s.phase === "done") {
    p.textContent = `all ${s.rounds} rounds answered`;
  } else { p.textContent = s.phase; }
  $("training").hidden = s.phase !== "training" && s.phase !== "starting";
  $("asking").hidden = s.phase !== "asking";
  $("done").hidden = s.phase !== "done";
  if (s.phase === "training" || s.phase === "starting") {
    const last = s.last_seconds ? ` (the last step took ${s.last_seconds} s)` : "";
    $("training-text").textContent = `${s.message || "working"} … ${s.seconds} s${last}`;
  }
  $("status").textContent = s.status || "";
  if (s.phase === "asking") {
    if (rebuild) { buildGrid(); sel = firstOpen(-1); }
    updateGrid();
  }
  renderResults();
}

function firstOpen(after) {
  const cs = cards();
  for (let i = after + 1; i < cs.length; i++) if (!cs[i].answer) return i;
  for (let i = 0; i < cs.length; i++) if (!cs[i].answer) return i;
  return Math.max(0, Math.min(after, cs.length - 1));
}

function buildGrid() {
  const bar = $("classbar");
  bar.innerHTML = "";
  S.classes.forEach((name, i) => {
    const b = document.createElement("button");
    b.className = "cls";
    b.dataset.answer = name;
    b.textContent = (i < 10 ? `${(i + 1) % 10} ` : "") + name;
    bar.appendChild(b);
  });
  const aux = (S.images.length ? [["s skip", "skip"], ["u unsure", "unsure"]] : []).concat(
    S.clusters.length ? [["a accept", "accept"], ["d decline", "decline"]] : [], [["z undo", null]]);
  for (const [label, ans] of aux) {
    const b = document.createElement("button");
    b.className = ans ? "cls aux" : "cls aux undo";
    b.dataset.answer = ans === null ? "" : ans;
    b.textContent = label;
    if (ans === null) b.id = "undo";
    bar.appendChild(b);
  }
  const grid = $("grid");
  grid.innerHTML = "";
  cards().forEach((c, i) => {
    const card = document.createElement("div");
    card.className = "card " + c.kind;
    card.dataset.i = i;
    const img = document.createElement("img");
    img.src = url(`/api/${c.kind}/${S.round}/${c.slot}`);
    img.alt = c.kind === "image" ? `image ${c.index}` : `cluster ${c.cluster}`;
    img.loading = "lazy";
    card.appendChild(img);
    const cap = document.createElement("div");
    cap.className = "cap";
    card.appendChild(cap);
    const ans = document.createElement("div");
    ans.className = "answer";
    card.appendChild(ans);
    grid.appendChild(card);
  });
}

function updateGrid() {
  const cs = cards();
  document.querySelectorAll("#grid .card").forEach((card) => {
    const i = +card.dataset.i, c = cs[i];
    if (!c) return;
    const cap = card.querySelector(".cap");
    if (c.kind === "image") {
      const prop = c.proposed ? `model: ${c.proposed} (${Math.round(100 * c.score)}%)` : "no model yet";
      cap.textContent = `#${c.index} · ${prop}` + (c.heldout ? " · held out" : "");
    } else {
      cap.textContent = `cluster ${c.cluster}: ${c.size} images (${c.shown} shown) · proposed ${c.proposed}`;
    }
    card.querySelector(".answer").textContent = c.answer || "";
    card.classList.toggle("answered", !!c.answer);
    card.classList.toggle("selected", i === sel);
  });
  const fin = $("finish");
  fin.disabled = !(S.answered === S.total && S.total > 0);
  fin.textContent = S.answered === S.total ? `Finish round ${S.round + 1} and train (Enter)`
                                           : `${S.total - S.answered} left to answer`;
}

function answer(value) { enqueue(() => doAnswer(value)); }
function undo() { enqueue(doUndo); }
function finish() { enqueue(doFinish); }

async function doAnswer(value) {
  const cs = cards();
  const c = cs[sel];
  if (!c) return;
  busy = true;
  try {
    const s = await api("/api/answer", {round: S.round, kind: c.kind, slot: c.slot, answer: value});
    render(s);
    showError("");
    sel = firstOpen(sel);
    updateGrid();
  } catch (e) { showError(e.message); }
  busy = false;
}

async function doUndo() {
  if (!S || S.phase !== "asking") return;
  busy = true;
  try {
    const before = cards().map((c) => c.answer);
    const s = await api("/api/undo", {round: S.round});
    render(s);
    const after = cards();
    const i = after.findIndex((c, j) => before[j] && !c.answer);
    if (i >= 0) sel = i;
    updateGrid();
    showError("");
  } catch (e) { showError(e.message); }
  busy = false;
}

async function doFinish() {
  if (!S || S.phase !== "asking" || S.answered !== S.total) return;
  busy = true;
  try { render(await api("/api/finish", {round: S.round})); showError(""); }
  catch (e) { showError(e.message); }
  busy = false;
}

function zoom(show) {
  const z = $("zoom");
  if (show) {
    const c = cards()[sel];
    if (!c) return;
    $("zoom-img").src = url(`/api/${c.kind}/${S.round}/${c.slot}`);
  }
  z.hidden = !show;
}

function renderResults() {
  if (!S || !S.history) return;
  const pts = S.history.map((h) => {
    const acc = h.test_accuracy != null ? h.test_accuracy : (h.heldout_accuracy != null ? h.heldout_accuracy : h.val_accuracy);
    return acc == null ? null : [h.labels, acc];
  }).filter((p) => p);
  const anyTest = S.history.some((h) => h.test_accuracy != null);
  $("curve-note").textContent = anyTest ? "Accuracy on the dataset's test set."
    : `Accuracy on the held-out share (${Math.round(100 * (S.holdout || 0))}%) of your own labels, which are not trained on.`;
  $("curve").innerHTML = curveSvg(pts);
  const rows = Object.entries(S.counts || {}).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`);
  $("counts").innerHTML = "<tr><th>class</th><th>labels</th></tr>" + rows.join("");
  $("spent").textContent = `${S.labeled} labels, ${S.interactions} interactions spent so far.`;
  $("export-labels").href = url("/api/export/labels.csv");
}

function esc(t) { const d = document.createElement("div"); d.textContent = t; return d.innerHTML; }

function curveSvg(pts) {
  if (!pts.length) return "<p class='note'>No accuracy yet: it appears after the first trained round.</p>";
  const W = 480, H = 240, L = 48, B = 32, T = 10, R = 10;
  const xs = pts.map((p) => p[0]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const X = (x) => L + (W - L - R) * (x - x0) / (x1 - x0), Y = (y) => T + (H - T - B) * (1 - y);
  const line = pts.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
  const dots = pts.map((p) => `<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="3"><title>${p[0]} labels: ${(100 * p[1]).toFixed(1)}%</title></circle>`).join("");
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((v) => `<text x="${L - 6}" y="${Y(v) + 4}" text-anchor="end">${100 * v}%</text><line x1="${L}" x2="${W - R}" y1="${Y(v)}" y2="${Y(v)}" class="grid"/>`).join("");
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="learning curve">${ticks}` +
    `<path d="${line}" class="curve"/>${dots}<text x="${(W + L) / 2}" y="${H - 6}" text-anchor="middle">labels</text>` +
    `<text x="${L}" y="${H - B + 14}" text-anchor="middle">${x0}</text><text x="${W - R}" y="${H - B + 14}" text-anchor="end">${x1}</text></svg>`;
}

function setView(v) {
  view = v;
  $("view-label").hidden = v !== "label";
  $("view-results").hidden = v !== "results";
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === v));
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => setView(t.dataset.view)));
  $("classbar").addEventListener("click", (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    if (b.id === "undo") undo(); else answer(b.dataset.answer);
  });
  $("grid").addEventListener("click", (ev) => {
    const card = ev.target.closest(".card");
    if (!card) return;
    sel = +card.dataset.i;
    updateGrid();
  });
  $("grid").addEventListener("dblclick", (ev) => {
    const card = ev.target.closest(".card");
    if (!card) return;
    sel = +card.dataset.i;
    zoom(true);
  });
  $("finish").addEventListener("click", finish);
  $("zoom").addEventListener("click", () => zoom(false));
  $("export-model").addEventListener("click", async () => {
    try {
      const r = await api("/api/export/model", {});
      $("export-out").textContent = `labels: ${r.labels}\nmodel:  ${r.model}\nload and predict:\n  ${r.snippet}`;
      showError("");
    } catch (e) { showError(e.message); }
  });
  $("stop").addEventListener("click", async () => {
    try { await api("/api/stop", {}); } catch (e) { /* the server is going away */ }
    document.body.innerHTML = "<main><h2>The server has stopped.</h2><p>Every answer is saved; run the same command to continue.</p></main>";
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (!$("zoom").hidden) { if (ev.key === "Escape" || ev.key === "+" || ev.key === "=") zoom(false); return; }
    if (view !== "label" || !S || S.phase !== "asking") return;
    const cs = cards();
    const c = cs[sel];
    const k = ev.key;
    if (k >= "0" && k <= "9") {
      const i = (+k + 9) % 10;
      if (i < S.classes.length) answer(S.classes[i]);
    } else if (k === "ArrowRight" || k === "ArrowDown") { sel = Math.min(cs.length - 1, sel + 1); updateGrid(); }
    else if (k === "ArrowLeft" || k === "ArrowUp") { sel = Math.max(0, sel - 1); updateGrid(); }
    else if (k === "s" && c && c.kind === "image") answer("skip");
    else if (k === "u" && c && c.kind === "image") answer("unsure");
    else if (k === "a" && c && c.kind === "cluster") answer("accept");
    else if (k === "d" && c && c.kind === "cluster") answer("decline");
    else if (k === "z") undo();
    else if (k === "+" || k === "=") zoom(true);
    else if (k === "Enter") finish();
    else return;
    ev.preventDefault();
  });
  refresh();
  setInterval(() => { if (!busy) refresh(); }, 1000);
});
