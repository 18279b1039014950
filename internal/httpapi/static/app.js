// The page's script. The server renders the category list and the chosen category's page
// into the HTML, so the page is whole before this runs; this asks the API for the rest when
// a person asks for it (other pages and categories with fetch("/api/v1/popular…"), movers,
// history, a product's ranks) and shows it without reloading the page.
//
// Ids and counts are JSON strings in the API so that 64-bit values stay exact; they are
// handled as strings here and never converted to Number (only ratios for bars and the
// chart's scale are computed, from counts, never from ids).
"use strict";

const $ = (id) => document.getElementById(id);
const api = "/api/v1/";
const svgNS = "http://www.w3.org/2000/svg";
const digits = /^[0-9]{1,19}$/;

const pick = $("pick"), categorySel = $("category"), limitSel = $("limit");
const find = $("find"), productInput = $("product");
const statusLine = $("status"), staleNote = $("stale"), windowLine = $("window");
const list = $("list"), listBody = list.tBodies[0], listHeading = $("list-h");
const prevBtn = $("prev"), nextBtn = $("next"), rangeText = $("range");
const moversBox = $("movers-box"), moversTable = $("movers"), moversNote = $("movers-note");
const historyBox = $("history-box"), chart = $("chart"), legend = $("legend");
const found = $("found"), foundHeading = $("found-h"), foundNote = $("found-note"), foundTable = $("found-table");

const state = {
  category: list.dataset.category,
  limit: Number(limitSel.value),
  offset: Number(list.dataset.offset || "0"),
  top: list.dataset.top,          // units sold by the category's rank 1: the bars' 100 %
  topSnapshot: list.dataset.snapshot,
  topCategory: list.dataset.category,
  snapshot: windowLine.dataset.snapshot,
};

// group writes a decimal string with commas between groups of three digits, as the server does.
function group(s) { return s.replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

// utc shows an RFC 3339 time as the server does: "2026-12-04 10:00 UTC".
function utc(d) { return d.toISOString().slice(0, 16).replace("T", " ") + " UTC"; }

function say(text, isError) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", Boolean(isError));
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

// get fetches an API path and returns its JSON with the snapshot it came from; an error
// answer becomes an Error carrying the problem's detail. Every answer updates the
// staleness notice and, when a new snapshot is being served, the window shown.
async function get(path) {
  let res;
  try {
    res = await fetch(api + path, { headers: { Accept: "application/json" } });
  } catch (err) {
    throw new Error("Could not reach the server: " + err.message);
  }
  noteSnapshot(res, path);
  let body = null;
  try { body = await res.json(); } catch (_) { /* an error page without JSON */ }
  if (!res.ok) {
    throw new Error((body && (body.detail || body.title)) || res.status + " " + res.statusText);
  }
  return { body, snapshot: res.headers.get("X-Snapshot-Id") || "" };
}

function noteSnapshot(res, path) {
  const h = res.headers;
  staleNote.hidden = h.get("X-Snapshot-Stale") !== "true";
  const id = h.get("X-Snapshot-Id"), start = h.get("X-Window-Start"), end = h.get("X-Window-End");
  if (!id || !start || !end || id === state.snapshot) return;
  // A newer snapshot is being served: the categories' counts may have changed too.
  if (!path.startsWith("categories")) loadCategories().catch((err) => say("Categories: " + err.message, true));
  state.snapshot = id;
  windowLine.dataset.snapshot = id;
  const t = (tid, v) => el("time", { id: tid, datetime: v }, utc(new Date(v)));
  windowLine.replaceChildren("Units sold from ", t("w-start", start), " to ", t("w-end", end),
    " (the cutoff) · snapshot ", el("span", { id: "w-id" }, id));
}

// change shows a rank against the rank 24 hours before: ▲ for a climb (a smaller number),
// ▼ for a fall, "new" when the product sold nothing then.
function change(rank, previous) {
  const td = el("td", { class: "chg" });
  if (previous === undefined) return td;
  if (previous === "") {
    td.append(el("span", { class: "new" }, "new"), el("span", { class: "vh" }, ": sold nothing 24 hours before"));
    return td;
  }
  const d = BigInt(previous) - BigInt(rank);
  if (d > 0n) {
    td.append(el("span", { class: "up", "aria-hidden": "true" }, "▲"), " " + d, el("span", { class: "vh" }, " up from " + previous));
  } else if (d < 0n) {
    td.append(el("span", { class: "down", "aria-hidden": "true" }, "▼"), " " + -d, el("span", { class: "vh" }, " down from " + previous));
  } else {
    td.append(el("span", { class: "same", "aria-hidden": "true" }, "="), el("span", { class: "vh" }, "unchanged"));
  }
  return td;
}

function unitsCell(total, top) {
  // A ratio of two counts, for the bar's length only.
  const pct = top && Number(top) > 0 ? Math.min(100, (100 * Number(total)) / Number(top)) : 0;
  const bar = svg("svg", { class: "bar", viewBox: "0 0 100 1", preserveAspectRatio: "none", "aria-hidden": "true", focusable: "false" },
    svg("rect", { width: pct.toFixed(2), height: "1" }));
  return el("td", { class: "units" }, el("span", { class: "n" }, group(total)), bar);
}

function setURL() {
  const q = new URLSearchParams();
  if (state.category) q.set("category_id", state.category);
  q.set("limit", String(state.limit));
  if (state.offset > 0) q.set("offset", String(state.offset));
  if (found.dataset.product) q.set("product_id", found.dataset.product);
  history.replaceState(null, "", "?" + q);
}

// A request's answer is shown only if no newer request for the same part has started.
const seq = { list: 0, movers: 0, history: 0, find: 0 };

async function loadList() {
  const n = ++seq.list;
  const { category, limit, offset } = state;
  if (!category) return;
  say("Loading category " + category + "…");
  try {
    const page = await get("popular?category_id=" + category + "&limit=" + (limit + 1) + "&offset=" + offset + "&with=previous_rank");
    let top = state.top;
    if (offset === 0) {
      top = page.body.length ? page.body[0].total_sold : "";
    } else if (state.topSnapshot !== page.snapshot || state.topCategory !== category) {
      const first = await get("popular?category_id=" + category + "&limit=1");
      top = first.body.length ? first.body[0].total_sold : "";
    }
    if (n !== seq.list) return;
    state.top = top;
    state.topSnapshot = page.snapshot;
    state.topCategory = category;
    renderList(page.body.slice(0, limit), page.body.length > limit);
    setURL();
  } catch (err) {
    if (n === seq.list) say(err.message, true);
  }
}

function renderList(rows, more) {
  const { category, offset, limit } = state;
  listBody.replaceChildren(...rows.map((e, i) => {
    const rank = String(offset + i + 1);
    return el("tr", {}, el("td", { class: "num" }, rank), change(rank, e.previous_rank),
      el("td", { class: "id" }, e.product_id), unitsCell(e.total_sold, state.top));
  }));
  list.dataset.category = category;
  list.dataset.offset = String(offset);
  listHeading.textContent = "Category " + category;
  const first = offset + 1, last = offset + rows.length;
  rangeText.textContent = rows.length ? "Ranks " + first + "–" + last : offset === 0 ? "No sales in this window." : "No more products.";
  prevBtn.value = String(Math.max(0, offset - limit));
  prevBtn.disabled = offset === 0;
  nextBtn.value = String(offset + limit);
  nextBtn.disabled = !more;
  // A pager button that just became disabled would drop the keyboard's place in the page.
  if (document.activeElement && document.activeElement.disabled) {
    (prevBtn.disabled ? (nextBtn.disabled ? listHeading : nextBtn) : prevBtn).focus();
  }
  // What is shown, for whoever waits on it (the browser tests): category/offset/limit.
  list.dataset.shown = category + "/" + offset + "/" + limit;
  say(rows.length ? "Category " + category + ": ranks " + first + "–" + last + "." : "Category " + category + ": " + rangeText.textContent);
}

async function loadMovers() {
  if (!moversBox.open || !state.category) return;
  const n = ++seq.movers;
  const category = state.category;
  moversNote.textContent = "Loading the movers of category " + category + "…";
  try {
    const { body } = await get("movers?category_id=" + category + "&limit=20");
    if (n !== seq.movers) return;
    moversTable.tBodies[0].replaceChildren(...body.map((m) => el("tr", {},
      el("td", { class: "num" }, m.rank),
      el("td", { class: "num" }, m.previous_rank === "" ? el("span", { class: "new" }, "new") : m.previous_rank),
      el("td", { class: "id" }, m.product_id),
      el("td", { class: "units" }, group(m.total_sold)))));
    moversTable.hidden = body.length === 0;
    moversNote.textContent = body.length
      ? "Category " + category + ": the products of its top 100 whose rank rose most since 24 hours before the cutoff."
      : "Category " + category + ": none of its top products climbed in the last 24 hours.";
    moversTable.dataset.shown = category;
  } catch (err) {
    if (n === seq.movers) moversNote.textContent = "Movers: " + err.message;
  }
}

async function loadHistory() {
  if (!historyBox.open || !state.category) return;
  const n = ++seq.history;
  const category = state.category;
  chart.replaceChildren(el("p", { class: "hint" }, "Loading the history of category " + category + "…"));
  legend.replaceChildren();
  try {
    const top = (await get("popular?category_id=" + category + "&limit=10")).body;
    const series = await Promise.all(top.map((e) =>
      get("products/" + e.product_id + "/history?category_id=" + category).then((r) => r.body)));
    if (n !== seq.history) return;
    drawChart(category, top.map((e) => e.product_id), series);
    chart.dataset.shown = category;
  } catch (err) {
    if (n === seq.history) chart.replaceChildren(el("p", { class: "error" }, "History: " + err.message));
  }
}

// drawChart draws one line per product: its rank at each kept snapshot, rank 1 at the top,
// on a logarithmic scale so the top places stay apart; a gap where it was not in the top
// list. Colours repeat with dashes after five, and the legend names each line.
function drawChart(category, products, series) {
  const cutoffs = [...new Set(series.flat().map((p) => p.cutoff))].sort();
  if (products.length === 0 || cutoffs.length === 0) {
    chart.replaceChildren(el("p", { class: "hint" }, "Category " + category + " has no history to show."));
    return;
  }
  const times = cutoffs.map((c) => Date.parse(c));
  let worst = 10;
  for (const s of series) for (const p of s) if (p.rank !== "") worst = Math.max(worst, Number(p.rank));
  const W = Math.max(300, Math.min(760, chart.clientWidth || 600)), H = 260;
  const left = 40, right = 12, topPad = 10, bottom = 34;
  const t0 = times[0], t1 = times[times.length - 1];
  const x = (t) => t1 === t0 ? (left + W - right) / 2 : left + ((t - t0) / (t1 - t0)) * (W - left - right);
  const y = (r) => topPad + (Math.log(r) / Math.log(worst)) * (H - topPad - bottom);
  const title = "Rank of category " + category + "'s top " + products.length + " at each of " + cutoffs.length +
    " kept snapshots, " + utc(new Date(t0)) + " to " + utc(new Date(t1));
  const g = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
  for (const r of [1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000]) {
    if (r > worst) break;
    g.append(svg("line", { class: "grid", x1: left, x2: W - right, y1: y(r), y2: y(r) }),
      svg("text", { x: left - 6, y: y(r) + 4, "text-anchor": "end" }, "#" + r));
  }
  const label = (t) => new Date(t).toISOString().slice(5, 16).replace("T", " ");
  g.append(svg("text", { x: left, y: H - 10, "text-anchor": "start" }, label(t0)));
  if (t1 !== t0) g.append(svg("text", { x: W - right, y: H - 10, "text-anchor": "end" }, label(t1) + " UTC"));
  const at = new Map(cutoffs.map((c, i) => [c, times[i]]));
  series.forEach((points, i) => {
    let d = "", pen = false;
    const dots = [];
    for (const p of points) {
      if (p.rank === "") { pen = false; continue; }
      const px = x(at.get(p.cutoff)).toFixed(1), py = y(Number(p.rank)).toFixed(1);
      d += (pen ? "L" : "M") + px + " " + py;
      pen = true;
      dots.push(svg("circle", { cx: px, cy: py, r: "2.5", class: "s" + i },
        svg("title", {}, "Product " + products[i] + ": #" + p.rank + " at " + utc(new Date(p.cutoff)))));
    }
    g.append(svg("path", { d, class: "series s" + i }), ...dots);
  });
  chart.replaceChildren(g);
  legend.replaceChildren(...products.map((id, i) => {
    const last = series[i].filter((p) => p.rank !== "").at(-1);
    return el("li", {}, svg("svg", { viewBox: "0 0 24 12", "aria-hidden": "true" },
      svg("line", { x1: 0, x2: 24, y1: 6, y2: 6, "stroke-width": 3, class: "series s" + i + (i >= 5 ? " d" : "") })),
      "Product " + id + (last ? " (#" + last.rank + " now)" : ""));
  }));
}

async function findProduct() {
  const id = productInput.value.trim();
  if (!digits.test(id)) {
    productInput.setAttribute("aria-invalid", "true");
    say("A product id is a number of 1 to 19 digits.", true);
    productInput.focus();
    return;
  }
  productInput.removeAttribute("aria-invalid");
  const n = ++seq.find;
  say("Looking up product " + id + "…");
  try {
    const { body } = await get("products/" + id + "/ranks");
    if (n !== seq.find) return;
    found.dataset.product = id;
    foundHeading.textContent = "Product " + id;
    foundTable.tBodies[0].replaceChildren(...body.map((r) => el("tr", {},
      el("td", {}, el("button", { type: "button", "data-category": r.category_id, "aria-label": "Show category " + r.category_id }, r.category_id)),
      el("td", {}, "#" + group(r.rank) + " of " + group(r.products_ranked)),
      el("td", {}, group(r.total_sold)))));
    foundTable.hidden = body.length === 0;
    foundNote.textContent = body.length
      ? "Its rank in each category where it sold in the window, among all the products that sold there."
      : "It sold nothing in the window.";
    found.hidden = false;
    found.dataset.shown = id;
    setURL();
    say("Product " + id + ": ranked in " + body.length + (body.length === 1 ? " category." : " categories."));
  } catch (err) {
    if (n === seq.find) say(err.message, true);
  }
}

// showCategory makes id the chosen category and loads what is open for it.
function showCategory(id, offset) {
  showOption(id);
  state.category = id;
  state.limit = Number(limitSel.value);
  state.offset = offset;
  loadList();
  loadMovers();
  loadHistory();
}

// loadCategories labels each category with how many products it ranks, from the API
// (the page came with ids only).
async function loadCategories() {
  const all = [];
  for (let offset = 0; ; offset += 1000) {
    const { body } = await get("categories?limit=1000&offset=" + offset);
    all.push(...body);
    if (body.length < 1000) break;
  }
  const chosen = categorySel.value;
  categorySel.replaceChildren(...all.map((c) =>
    el("option", { value: c.category_id }, c.category_id + " · " + group(c.products_ranked) + " products")));
  if (chosen) showOption(chosen);
}

// showOption selects category id in the list, adding it if the list lacks it.
function showOption(id) {
  if (![...categorySel.options].some((o) => o.value === id)) categorySel.append(el("option", { value: id }, id));
  categorySel.value = id;
}

pick.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const by = ev.submitter;
  showCategory(categorySel.value, by && by.name === "offset" ? Number(by.value) : 0);
});
categorySel.addEventListener("change", () => showCategory(categorySel.value, 0));
limitSel.addEventListener("change", () => showCategory(categorySel.value, 0));
find.addEventListener("submit", (ev) => { ev.preventDefault(); findProduct(); });
foundTable.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-category]");
  if (!b) return;
  showCategory(b.dataset.category, 0);
  listHeading.focus();
});
moversBox.addEventListener("toggle", loadMovers);
historyBox.addEventListener("toggle", loadHistory);

if (!state.snapshot) {
  // No snapshot yet: try again in a few seconds rather than show an empty page forever.
  setTimeout(() => location.reload(), 5000);
} else if (productInput.value) {
  findProduct();
}
