// The page asks the read API for one page of a category's ranking and shows it as a table.
"use strict";

const form = document.getElementById("pick");
const categoryInput = document.getElementById("category");
const limitInput = document.getElementById("limit");
const statusLine = document.getElementById("status");
const table = document.getElementById("ranking");
const pager = document.getElementById("pager");
const prev = document.getElementById("prev");
const next = document.getElementById("next");

let offset = 0;

function say(text, isError) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", Boolean(isError));
}

function when(rfc3339) {
  const d = new Date(rfc3339);
  return isNaN(d) ? rfc3339 : d.toLocaleString();
}

async function show() {
  const category = categoryInput.value.trim();
  const limit = Number(limitInput.value);
  if (category === "") return;
  const params = new URLSearchParams({ category_id: category, limit: String(limit), offset: String(offset) });
  history.replaceState(null, "", "?" + new URLSearchParams({ category_id: category, limit: String(limit) }));
  say("Loading…");
  let res, body;
  try {
    res = await fetch("/api/v1/popular?" + params, { headers: { Accept: "application/json" } });
    body = await res.json();
  } catch (err) {
    say("Could not reach the server: " + err.message, true);
    return;
  }
  if (!res.ok) {
    table.hidden = pager.hidden = true;
    say((body && (body.detail || body.title)) || res.statusText, true);
    return;
  }
  const rows = body.map((e, i) => {
    const tr = document.createElement("tr");
    // Ids are strings in the API so that 64-bit values stay exact; show them as they are.
    for (const text of [String(offset + i + 1), e.product_id, Number(e.total_sold).toLocaleString()]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = rows.length === 0;
  const span = "from " + when(res.headers.get("X-Window-Start")) + " to " + when(res.headers.get("X-Window-End"));
  say(rows.length === 0
    ? (offset === 0 ? "No sales in category " + category + " " + span + "." : "No more products.")
    : "Category " + category + ", ranks " + (offset + 1) + "–" + (offset + rows.length) + ", sales " + span +
      " (snapshot " + res.headers.get("X-Snapshot-Id") + ").");
  prev.disabled = offset === 0;
  next.disabled = rows.length < limit;
  pager.hidden = offset === 0 && rows.length < limit;
}

form.addEventListener("submit", (ev) => { ev.preventDefault(); offset = 0; show(); });
limitInput.addEventListener("change", () => { offset = 0; show(); });
prev.addEventListener("click", () => { offset = Math.max(0, offset - Number(limitInput.value)); show(); });
next.addEventListener("click", () => { offset += Number(limitInput.value); show(); });

const initial = new URLSearchParams(location.search);
if (initial.has("category_id")) {
  categoryInput.value = initial.get("category_id");
  if (initial.has("limit")) limitInput.value = initial.get("limit");
  show();
}
