"use strict";
// Draws every KPI of the embedded snapshot as plain SVG and HTML: no library, no network.
// Each card gets data-points, the number of data marks it drew, which tests read.

const SVG = "http://www.w3.org/2000/svg";
const snapshot = JSON.parse(document.getElementById("data").textContent);
const kpiIndex = new Map(snapshot.kpis.map((k, i) => [k.name, i]));
const number = new Intl.NumberFormat("en-US");
const oneDecimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1, minimumFractionDigits: 1 });

function el(tag, attributes, parent, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function html(tag, className, parent, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  if (parent) parent.appendChild(node);
  return node;
}

function svg(parent, width, height) {
  return el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" }, parent);
}

function rowsOf(period, name) {
  return period.answers[kpiIndex.get(name)] || [];
}

function empty(chart) {
  html("p", "empty", chart, "No data in this period");
  return 0;
}

// Horizontal bars: one row per item, its label and value.
function bars(chart, rows, label, value, color) {
  if (rows.length === 0) return empty(chart);
  const width = 420, rowHeight = 30, left = 140, right = 56;
  const box = svg(chart, width, rows.length * rowHeight + 4);
  const max = Math.max(...rows.map((r) => r[value]), 1);
  rows.forEach((r, i) => {
    const y = i * rowHeight + 4;
    const w = Math.max(2, ((width - left - right) * r[value]) / max);
    el("text", { x: left - 8, y: y + 17, "text-anchor": "end" }, box, truncate(String(r[label]), 17));
    el("rect", { x: left, y: y + 3, width: w, height: rowHeight - 10, rx: 3, fill: color, class: "mark" }, box);
    el("text", { x: left + w + 6, y: y + 17, class: "muted" }, box, number.format(r[value]));
  });
  return rows.length;
}

function truncate(text, length) {
  return text.length > length ? text.slice(0, length - 1) + "…" : text;
}

function levelColor(level) {
  return level === "paid" ? "var(--paid)" : "var(--free)";
}

function legend(chart, entries) {
  const box = html("div", "legend", chart);
  for (const [name, color] of entries) {
    const item = html("span", "", box);
    const swatch = html("i", "", item);
    swatch.style.background = color;
    item.appendChild(document.createTextNode(name));
  }
}

const tiles = {
  kpi_listens(card, rows) {
    card.querySelector(".value").textContent = number.format(rows[0] ? rows[0][0] : 0);
    card.querySelector(".note").textContent = "songs started";
    return rows.length;
  },
  kpi_hours_listened(card, rows) {
    card.querySelector(".value").textContent = oneDecimal.format(rows[0] ? rows[0][0] : 0);
    card.querySelector(".note").textContent = "hours of music";
    return rows.length;
  },
  kpi_session_listening_time(card, rows) {
    const [sessions, minutes] = rows[0] || [0, null];
    card.querySelector(".value").textContent = minutes === null ? "–" : `${oneDecimal.format(minutes)} min`;
    card.querySelector(".note").textContent = `average over ${number.format(sessions)} sessions`;
    return sessions > 0 ? 1 : 0;
  },
  kpi_active_users_30d(card, rows) {
    const [date, users] = rows[0] || [null, 0];
    card.querySelector(".value").textContent = number.format(users);
    card.querySelector(".note").textContent = date ? `30 days to ${date}` : "no listens in the period";
    return rows.length;
  },
};

const charts = {
  kpi_top_artists: (chart, rows) => bars(chart, rows, 0, 1, "var(--accent)"),
  kpi_top_states: (chart, rows) => bars(chart, rows, 0, 1, "#5a9e8f"),

  kpi_listens_by_level(chart, rows) {
    if (rows.length === 0) return empty(chart);
    const width = 420, height = 90;
    const box = svg(chart, width, height);
    let x = 0;
    for (const [level, listens, percent] of rows) {
      const w = (width * percent) / 100;
      el("rect", { x, y: 20, width: Math.max(w, 1), height: 56, fill: levelColor(level), class: "mark" }, box);
      if (w > 60) {
        el("text", { x: x + 10, y: 54, style: "font-size:18px;font-weight:600;fill:#fff" }, box, `${oneDecimal.format(percent)}%`);
      }
      x += w;
    }
    legend(chart, rows.map(([level, listens, percent]) =>
      [`${level}: ${number.format(listens)} listens (${oneDecimal.format(percent)}%)`, levelColor(level)]));
    return rows.length;
  },

  kpi_paid_free_users_mom(chart, rows) {
    if (rows.length === 0) return empty(chart);
    const months = [...new Set(rows.map((r) => r[0]))];
    const levels = ["free", "paid"];
    const width = 420, height = 210, bottom = 36, top = 22;
    const box = svg(chart, width, height);
    const max = Math.max(...rows.map((r) => r[2]), 1);
    const slot = width / months.length;
    const barWidth = Math.min(46, (slot - 16) / 2);
    let marks = 0;
    months.forEach((month, i) => {
      levels.forEach((level, j) => {
        const row = rows.find((r) => r[0] === month && r[1] === level);
        if (!row) return;
        const h = ((height - bottom - top) * row[2]) / max;
        const x = i * slot + slot / 2 - barWidth + j * barWidth;
        el("rect", { x, y: height - bottom - h, width: barWidth - 3, height: Math.max(h, 1), fill: levelColor(level), class: "mark" }, box);
        const change = row[4] === null ? "" : `${row[4] > 0 ? "+" : ""}${oneDecimal.format(row[4])}%`;
        el("text", { x: x + (barWidth - 3) / 2, y: height - bottom - h - 6, "text-anchor": "middle", class: "muted" }, box, change || number.format(row[2]));
        marks += 1;
      });
      el("text", { x: i * slot + slot / 2, y: height - 12, "text-anchor": "middle" }, box, month.slice(0, 7));
    });
    legend(chart, levels.map((l) => [`${l} users`, levelColor(l)]));
    html("p", "legend", chart, "Labels: change on the month before.");
    return marks;
  },

  kpi_listens_monthly(chart, rows) {
    if (rows.length === 0) return empty(chart);
    const width = 420, height = 210, bottom = 36, top = 22;
    const box = svg(chart, width, height);
    const maxListens = Math.max(...rows.map((r) => r[1]), 1);
    const maxHours = Math.max(...rows.map((r) => r[2]), 1e-9);
    const slot = width / rows.length;
    const points = [];
    rows.forEach(([month, listens, hours], i) => {
      const h = ((height - bottom - top) * listens) / maxListens;
      const x = i * slot + slot * 0.2;
      el("rect", { x, y: height - bottom - h, width: slot * 0.6, height: Math.max(h, 1), fill: "var(--accent)", opacity: 0.85, class: "mark" }, box);
      el("text", { x: i * slot + slot / 2, y: height - bottom - h - 6, "text-anchor": "middle", class: "muted" }, box, number.format(listens));
      el("text", { x: i * slot + slot / 2, y: height - 12, "text-anchor": "middle" }, box, month.slice(0, 7));
      points.push([i * slot + slot / 2, height - bottom - ((height - bottom - top) * hours) / maxHours]);
    });
    el("polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none", stroke: "var(--paid)", "stroke-width": 2.5 }, box);
    for (const [x, y] of points) el("circle", { cx: x, cy: y, r: 4, fill: "var(--paid)" }, box);
    legend(chart, [["listens", "var(--accent)"], ["hours listened", "var(--paid)"]]);
    return rows.length;
  },

  kpi_users_per_state_monthly(chart, rows) {
    if (rows.length === 0) return empty(chart);
    const months = [...new Set(rows.map((r) => r[0]))].slice(-4);
    const totals = new Map();
    for (const [, state, users] of rows) totals.set(state, (totals.get(state) || 0) + users);
    const states = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a) || a.localeCompare(b)).slice(0, 10);
    const max = Math.max(...rows.map((r) => r[2]), 1);
    const table = html("table", "heat", chart);
    const head = html("tr", "", html("thead", "", table));
    html("th", "", head, "State");
    for (const month of months) html("th", "", head, month.slice(0, 7));
    const body = html("tbody", "", table);
    let marks = 0;
    for (const state of states) {
      const tr = html("tr", "", body);
      html("td", "", tr, state);
      for (const month of months) {
        const row = rows.find((r) => r[0] === month && r[1] === state);
        const td = html("td", "", tr, row ? number.format(row[2]) : "");
        if (row) {
          td.style.background = `rgba(59, 111, 182, ${(0.1 + (0.6 * row[2]) / max).toFixed(2)})`;
          td.className = "mark";
          marks += 1;
        }
      }
    }
    return marks;
  },

  kpi_listening_cities(chart, rows) {
    const width = 960, height = 560;
    const box = svg(chart, width, height);
    drawLand(box);
    if (rows.length === 0) {
      el("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "muted" }, box, "No data in this period");
      return 0;
    }
    const max = Math.max(...rows.map((r) => r[4]), 1);
    let marks = 0;
    for (const [city, state, lat, lon, listens] of rows) {
      const at = project(lat, lon);
      if (!at) continue;
      const circle = el("circle", {
        cx: at[0].toFixed(1), cy: at[1].toFixed(1), r: (2.5 + 16 * Math.sqrt(listens / max)).toFixed(1),
        fill: "rgba(224, 128, 58, 0.45)", stroke: "#c0611c", "stroke-width": 1, class: "mark",
      }, box);
      el("title", {}, circle, `${city}, ${state}: ${number.format(listens)} listens`);
      marks += 1;
    }
    rows.slice(0, 5).forEach(([city, state, lat, lon], i) => {
      const at = project(lat, lon);
      if (at) el("text", { x: at[0] + 8, y: at[1] - 8, style: "font-weight:600" }, box, `${i + 1}. ${city}, ${state}`);
    });
    el("text", { x: width - 12, y: height - 10, "text-anchor": "end", class: "muted" }, box,
      `${rows.length} cities; circle area by listens`);
    return marks;
  },
};

// Lower 48 states at their latitude's scale, Alaska, Hawaii and Puerto Rico as insets.
function project(lat, lon) {
  if (lon >= -125 && lon <= -66 && lat >= 24 && lat <= 50) return [10 + (lon + 125) * 15.5, 20 + (50 - lat) * 19.5];
  if (lon >= -170 && lon <= -129 && lat >= 51) return [30 + (lon + 170) * 3.3, 420 + (72 - lat) * 6.8];
  if (lon >= -161 && lon <= -154 && lat >= 18 && lat <= 23) return [190 + (lon + 161) * 15.5, 450 + (23 - lat) * 19.5];
  if (lon >= -68 && lon <= -65 && lat >= 17 && lat <= 19) return [830 + (lon + 68) * 15.5, 520 + (19 - lat) * 19.5];
  return null;
}

// The half-degree cells that hold a US ZIP code, as a faint silhouette of the country.
function drawLand(box) {
  const cells = document.getElementById("land").textContent.trim().split(" ");
  let path = "";
  for (const cell of cells) {
    const [lat, lon] = cell.split(",").map((v) => Number(v) / 2 + 0.25);
    const at = project(lat, lon);
    if (at) path += `M${at[0].toFixed(1)} ${at[1].toFixed(1)}h4v4h-4z`;
  }
  el("path", { d: path, fill: "var(--land)" }, box);
}

function render(period) {
  for (const card of document.querySelectorAll("[data-kpi]")) {
    const name = card.dataset.kpi;
    const rows = rowsOf(period, name);
    let points;
    if (tiles[name]) {
      points = tiles[name](card, rows);
    } else {
      const chart = card.querySelector(".chart");
      chart.replaceChildren();
      points = charts[name](chart, rows);
    }
    card.dataset.points = String(points);
    const kpi = snapshot.kpis[kpiIndex.get(name)];
    card.title = `${kpi.name}: ${kpi.description}`;
  }
  document.body.dataset.period = period.label;
}

function periodName(period) {
  if (period.label === "all") return `All time`;
  return `${period.label} (${period.from} to ${period.to})`;
}

function start() {
  document.getElementById("source").textContent = `${snapshot.source} · generated ${snapshot.generated_at}`;
  document.getElementById("footer").textContent =
    "Each KPI is a view in the warehouse (hover a card for its name); the numbers count current record versions only.";
  const select = document.getElementById("period");
  snapshot.periods.forEach((period, i) => {
    const option = document.createElement("option");
    option.value = String(i);
    option.textContent = periodName(period);
    select.appendChild(option);
  });
  const fromHash = snapshot.periods.findIndex((p) => `#${p.label}` === decodeURIComponent(location.hash));
  select.value = String(Math.max(fromHash, 0));
  const show = () => {
    const period = snapshot.periods[Number(select.value)];
    // The period stays in the address, so that a refresh of the live page keeps it.
    location.hash = encodeURIComponent(period.label);
    render(period);
  };
  select.addEventListener("change", show);
  show();
  document.body.dataset.rendered = "true";
}

start();
