// numpynn's page. Plain JavaScript, no libraries: the drawing pad, the views of the network's answer and
// inside, and the Learn tab's form and live curves. Every number comes from the server; the 28x28 the
// network saw is prepared there (numpynn.images.prepare), never here.
"use strict";

const $ = (selector) => document.querySelector(selector);

// MNIST's strokes are about 9 % as wide as its digits are tall (1.8 px of 20, measured on 5,000 test digits):
// 18 px for a digit drawn 200 px tall on this 280 px pad, which prepare() scales down to MNIST's 20 px.
const BRUSH = 18;
const THROTTLE_MS = 150;   // predictions while drawing: at most one per this many milliseconds

const state = {
  models: [], model: null,   // the listed models and the chosen one's name
  drawn: false,              // is there anything on the pad?
  generation: 0,             // bumped by Clear: answers about an older drawing are dropped
  inFlight: false, again: false, timer: null, lastSent: 0,
  last: null,                // the latest answer from /api/predict
  unit: null,                // {layer, unit} of the clicked hidden unit
  why: false, toward: null,  // explanations asked for: the answer's saliency, and "what would make it a K"
};

// ----------------------------------------------------------------------------------------------------------
// Tabs

function showTab(name) {
  for (const button of document.querySelectorAll("nav button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== name;
}
for (const el of document.querySelectorAll("[data-tab], [data-goto]")) {
  el.addEventListener("click", (e) => { e.preventDefault(); showTab(el.dataset.tab || el.dataset.goto); });
}

// The server's token, written into the page when the server sent it. Starting and stopping training need it
// (numpynn/web/guard.py): other web pages cannot read it, nor send this header to the server without asking.
const TOKEN = document.querySelector('meta[name="numpynn-token"]').content;

async function api(path, options = {}) {
  if (options.method === "POST") options = { ...options, headers: { ...options.headers, "X-Numpynn-Token": TOKEN } };
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON: the status says enough */ }
  if (!response.ok) throw new Error((body && body.detail) || `${response.status} ${response.statusText}`);
  return body;
}

function showError(el, error) {
  el.hidden = !error;
  el.textContent = error ? String(error.message || error) : "";
}

// ----------------------------------------------------------------------------------------------------------
// Models

async function loadModels(select) {
  const data = await api("/api/models");
  state.models = data.models;
  $("#no-model").hidden = data.models.length > 0;
  const menu = $("#model");
  menu.replaceChildren(...data.models.map((m) => {
    const option = document.createElement("option");
    option.value = m.name;
    const acc = m.test_accuracy == null ? "" : ` (${(100 * m.test_accuracy).toFixed(1)} %)`;
    option.textContent = m.name + acc;
    option.title = `${m.architecture}, ${m.parameters.toLocaleString()} parameters`;
    return option;
  }));
  const names = data.models.map((m) => m.name);
  state.model = names.includes(select) ? select : names.includes(state.model) ? state.model : data.default;
  menu.value = state.model || "";
  menu.disabled = names.length === 0;
  if (!state.last) showBlankInside();
}

function modelLayers() {
  const entry = state.models.find((m) => m.name === state.model);
  return entry ? entry.layers : [];
}

// Explanations: the server runs the network's backward pass down to the pixels (numpynn.explain).
$("#why").addEventListener("change", (e) => { state.why = e.target.checked; predictSoon(true); });
$("#toward").addEventListener("change", (e) => {
  state.toward = e.target.value === "" ? null : Number(e.target.value);
  predictSoon(true);
});

$("#model").addEventListener("change", (e) => {
  state.model = e.target.value;
  state.unit = null;
  showUnitPanel(false);
  if (!state.last) showBlankInside();
  predictSoon(true);
});

// ----------------------------------------------------------------------------------------------------------
// The drawing pad: pointer events cover mouse, touch and pen alike

const pad = $("#pad");
const ink = pad.getContext("2d");
let stroke = null;   // the last point of the stroke being drawn

function clearPad() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  state.drawn = false;
  state.upload = null;     // the uploaded file, until the pad is drawn on
  state.picture = false;   // does the pad hold an uploaded picture (in colour, perhaps)?
  state.generation += 1;
  clearTimeout(state.timer);
  if (!state.inFlight) busy(false);   // else the answer in flight is dropped, and then busy(false)
  showBlank("draw a digit");
}

function padPoint(e) {
  const box = pad.getBoundingClientRect();   // the pad may be shown larger or smaller than 280 px
  return [(e.clientX - box.left) * pad.width / box.width, (e.clientY - box.top) * pad.height / box.height];
}

function line(from, to) {
  ink.strokeStyle = "#fff";
  ink.lineWidth = BRUSH;
  ink.lineCap = "round";
  ink.lineJoin = "round";
  ink.beginPath();
  ink.moveTo(from[0], from[1]);
  ink.lineTo(to[0], to[1]);   // a dot when from == to: the round cap draws it
  ink.stroke();
}

pad.addEventListener("pointerdown", (e) => {
  if (e.button !== 0) return;
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  stroke = padPoint(e);
  line(stroke, stroke);
  state.drawn = true;
  state.upload = null;
  predictSoon();
});
pad.addEventListener("pointermove", (e) => {
  if (!stroke) return;
  // Coalesced events: every point the pointer passed through since the last frame, so fast strokes stay smooth
  const points = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const p of (points.length ? points : [e])) {
    const point = padPoint(p);
    line(stroke, point);
    stroke = point;
  }
  predictSoon();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!stroke) return;
    stroke = null;
    predictSoon(true);   // the pen is lifted: answer now
  });
}

$("#clear").addEventListener("click", clearPad);

$("#upload").addEventListener("change", (e) => {
  const file = e.target.files[0];
  e.target.value = "";   // choosing the same file again still fires
  if (!file) return;
  state.upload = file;
  state.picture = true;
  state.drawn = true;
  state.generation += 1;
  const url = URL.createObjectURL(file);   // shown on the pad; the original file is what gets sent
  const picture = new Image();
  picture.onload = () => {
    ink.fillStyle = "#000";
    ink.fillRect(0, 0, pad.width, pad.height);
    const scale = Math.min(pad.width / picture.width, pad.height / picture.height);
    const w = picture.width * scale, h = picture.height * scale;
    ink.drawImage(picture, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    URL.revokeObjectURL(url);
  };
  picture.src = url;
  predictSoon(true);
});

// ----------------------------------------------------------------------------------------------------------
// Asking the server: throttled while drawing, at once when the pen lifts; one request at a time

function busy(yes) {
  document.body.dataset.predicting = yes ? "1" : "0";   // for people's tools and the browser test alike
}

function predictSoon(now = false) {
  busy(true);
  if (state.inFlight) { state.again = true; return; }
  clearTimeout(state.timer);
  const wait = now ? 0 : Math.max(0, THROTTLE_MS - (performance.now() - state.lastSent));
  state.timer = setTimeout(predict, wait);
}

function padBlob() {
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

function padGrey() {
  // The pad is drawn in greys (white ink on black), so any one channel is the grey level: 280 x 280 bytes,
  // row by row, sent as they are. The server prepares them (numpynn.images.prepare); nothing is done here.
  const rgba = ink.getImageData(0, 0, pad.width, pad.height).data;
  const grey = new Uint8Array(pad.width * pad.height);
  for (let i = 0; i < grey.length; i++) grey[i] = rgba[4 * i];
  return grey;
}

async function predict() {
  if (!state.drawn || !state.model) { showBlank(state.drawn ? "no model yet" : "draw a digit"); busy(false); return; }
  const generation = state.generation;
  state.inFlight = true;
  state.again = false;
  state.lastSent = performance.now();
  try {
    const query = `/api/predict?model=${encodeURIComponent(state.model)}` + (state.why ? "&why=1" : "") +
      (state.toward === null ? "" : `&toward=${state.toward}`);
    let request;
    if (state.picture) {   // an uploaded picture, perhaps drawn over: sent as a picture, for the server to read
      const form = new FormData();
      if (state.upload) form.append("image", state.upload, state.upload.name);
      else form.append("image", await padBlob(), "pad.png");
      request = { method: "POST", body: form };
    } else {
      request = { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: padGrey() };
    }
    const answer = await api(query, request);
    if (generation === state.generation) {
      showError($("#draw-error"), null);
      if (answer.blank) showBlank(answer.message);
      else showAnswer(answer);
    }
  } catch (error) {
    if (generation === state.generation) showError($("#draw-error"), error);
  } finally {
    state.inFlight = false;
    if (state.again) predictSoon();
    else busy(false);
  }
}

// ----------------------------------------------------------------------------------------------------------
// Showing the answer

const bars = $("#bars");
bars.replaceChildren(...Array.from({ length: 10 }, (_, k) => {
  const li = document.createElement("li");
  li.innerHTML = `<span>${k}</span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
  return li;
}));

function showBlank(message) {
  state.last = null;
  const verdict = $("#verdict");
  verdict.textContent = message;
  verdict.className = "verdict blank";
  verdict.dataset.state = "blank";
  $("#why-map").hidden = $("#why-caption").hidden = true;
  delete verdict.dataset.digit;
  for (const li of bars.children) {
    li.className = "";
    li.querySelector(".fill").style.width = "0";
    li.querySelector(".pct").textContent = "";
  }
  const seen = $("#seen").getContext("2d");
  seen.fillStyle = "#000";
  seen.fillRect(0, 0, 28, 28);
  showBlankInside();
  showUnitPanel(false);
}

function showBlankInside() {
  // Before a digit is drawn the layers are shown dark, so that a newcomer sees, and can read about, what is
  // there to watch; their units can already be clicked for their weights.
  const layers = modelLayers().map((layer) => ({ ...layer, values: new Array(size(layer)).fill(0) }));
  showInside(layers, true);
}

function size(layer) {
  return layer.shape.reduce((a, b) => a * b, 1);
}

function showUnitPanel(yes) {
  $("#unit").hidden = !yes;
  $("#unit-help").hidden = yes;
}

function showAnswer(answer) {
  state.last = answer;
  const P = answer.probabilities;
  const verdict = $("#verdict");
  const sure = `${(100 * P[answer.digit]).toFixed(1)} %`;
  // "not sure": the model's own rule, chosen on its dev digits (too little confidence, or far too much ink)
  verdict.textContent = answer.not_sure ? `Not sure (maybe a ${answer.digit}, ${sure})` : `It's a ${answer.digit}  (${sure})`;
  verdict.className = answer.not_sure ? "verdict unsure" : "verdict";
  verdict.dataset.state = answer.not_sure ? "unsure" : "digit";
  verdict.dataset.digit = String(answer.digit);
  [...bars.children].forEach((li, k) => {
    li.className = k === answer.digit ? "top" : "";
    li.querySelector(".fill").style.width = `${100 * P[k]}%`;
    li.querySelector(".pct").textContent = `${(100 * P[k]).toFixed(1)} %`;
  });
  drawGrey($("#seen"), answer.input.flat(), 28, 28);
  showWhy(answer);
  showInside(answer.layers);
  if (state.unit) showUnit(state.unit.layer, state.unit.unit);
}

function showWhy(answer) {
  // The map asked for, over a dimmed copy of what the network saw: red where ink raises the score (or the
  // probability of the asked digit), blue where it lowers it; the strongest pixel at full colour.
  const map = answer.toward ? answer.toward.map : answer.why;
  const canvas = $("#why-map"), caption = $("#why-caption");
  canvas.hidden = caption.hidden = !map;
  if (!map) return;
  const input = answer.input.flat(), values = map.flat ? map.flat() : map;
  const top = Math.max(1e-12, ...values.map(Math.abs));
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const rise = Math.max(0, values[i] / top), fall = Math.max(0, -values[i] / top), base = 0.35 * input[i];
    const mix = (red, blue) => Math.round(255 * (base * (1 - rise - fall) + rise * red + fall * blue));
    image.data.set([mix(1, 0.2), mix(0.15, 0.45), mix(0.1, 1), 255], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
  caption.textContent = answer.toward
    ? `Where more ink (red) or less ink (blue) would make the network more sure it is a ${answer.toward.digit}: ` +
      "the gradient of log p(" + answer.toward.digit + ") with respect to each pixel."
    : `Why a ${answer.digit}: each lit pixel's share of the ${answer.digit}'s score (gradient \u00d7 input). ` +
      "Red pixels raised it, blue ones lowered it.";
}

function drawGrey(canvas, values, w, h, top = 1) {
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const v = Math.max(0, Math.min(255, Math.round(255 * values[i] / top)));
    image.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
}

// Hidden layers, one panel each, one above the other and as wide as the page lets them be: dense units as a
// grid of cells (brightness: the unit's output over the layer's largest), feature maps as a row of small
// pictures. Click a unit for its incoming weights.
const CELL = { max: 28, min: 12, height: 360 };   // a unit's cell, in CSS px; a grid taller than `height` shrinks

function unitGrid(n, width) {
  // The largest cell (up to CELL.max) whose grid fits the width and stays under CELL.height tall; never under
  // CELL.min px, so every unit can be seen and clicked (800 units: 18 px cells in a 792 px wide panel).
  const balanced = Math.ceil(Math.sqrt(n * 4));   // about four times as wide as tall, when the width allows
  for (let cell = CELL.max; cell > CELL.min; cell--) {
    const cols = Math.min(n, balanced, Math.max(1, Math.floor(width / cell)));
    if (Math.ceil(n / cols) * cell <= CELL.height) return { cols, rows: Math.ceil(n / cols), cell };
  }
  const cols = Math.min(n, Math.max(1, Math.floor(width / CELL.min)));
  return { cols, rows: Math.ceil(n / cols), cell: CELL.min };
}

function mapTile(h) {
  // A map's side on screen grows with its side in pixels (6 px a pixel, from 32 to 84 px): a bigger map is
  // never drawn smaller than a smaller one, and a 4x4 map is still big enough to see.
  return Math.max(32, Math.min(84, 6 * h));
}

// What each layer does, in a phrase a newcomer can read; matched against the layer's name.
const OPERATIONS = [
  ["LeakyReLU", "a leaky ReLU (a negative sum is shrunk, not set to 0)"],
  ["ReLU", "a ReLU (a negative sum becomes 0)"],
  ["Tanh", "tanh (squashed into -1 to 1)"],
  ["Sigmoid", "a sigmoid (squashed into 0 to 1)"],
];

function explain(layer, previous, blank) {
  const n = size(layer);
  const source = previous ? `the ${size(previous).toLocaleString()} outputs of the layer above`
    : "the 784 pixels the network saw";
  const active = layer.values.filter((v) => v > 0).length;
  const now = blank ? "Draw a digit to see which light up." : `${active.toLocaleString()} of ${n.toLocaleString()} ` +
    `${layer.kind === "units" ? "units" : "map pixels"} are lit for this drawing.`;
  if (layer.kind === "units") {
    const operation = OPERATIONS.find(([name]) => layer.name.includes(name));
    return `Each of these ${n.toLocaleString()} units adds up ${source}, each times a weight it learned, and ` +
      `passes the sum through ${operation ? operation[1] : "its activation"}. Bright: the unit fires; dark: ` +
      `it stays silent. ${now} Click a unit to see what it looks for.`;
  }
  const [C, h, w] = layer.shape;
  return `${C} feature maps of ${h}x${w}: each is one small filter slid over ${source}, then pooled, bright ` +
    `where the filter finds its pattern. ${now} Click a map to see its filter.`;
}

function showInside(layers, blank = false) {
  const box = $("#inside");
  box.dataset.blank = blank ? "1" : "0";
  const width = box.clientWidth - 30;   // the panel's padding and border
  const panels = layers.map((layer, i) => {
    const panel = document.createElement("div");
    panel.className = "panel layer";
    const title = document.createElement("h2");
    title.textContent = layer.name;
    const canvas = document.createElement("canvas");
    canvas.dataset.layer = layer.index;
    const top = Math.max(1e-6, ...layer.values.map(Math.abs));
    if (layer.kind === "units") drawUnits(canvas, layer, top, width);
    else drawMaps(canvas, layer, top, width);
    canvas.addEventListener("click", (e) => {
      const unit = unitAt(canvas, layer, e);
      if (unit !== null) showUnit(layer.index, unit);
    });
    const note = document.createElement("p");
    note.className = "explain";
    note.textContent = explain(layer, layers[i - 1], blank);
    panel.append(title, canvas, note);
    return panel;
  });
  box.replaceChildren(...panels);
}

function drawUnits(canvas, layer, top, width) {
  const n = layer.values.length, { cols, rows, cell } = unitGrid(n, width);
  canvas.width = cols * cell;
  canvas.height = rows * cell;
  canvas.dataset.cols = cols;
  canvas.dataset.cell = cell;
  canvas.dataset.top = layer.values.indexOf(Math.max(...layer.values));   // the most active unit
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  layer.values.forEach((v, j) => {
    const a = Math.max(0, v) / top;   // ReLU outputs are >= 0; tanh's negatives show dark
    ctx.fillStyle = `rgb(${Math.round(40 + 215 * a)}, ${Math.round(40 + 160 * a)}, ${Math.round(46 + 44 * a)})`;
    ctx.fillRect((j % cols) * cell, Math.floor(j / cols) * cell, cell - 2, cell - 2);   // a 2 px gap
  });
}

function drawMaps(canvas, layer, top, width) {
  const [C, h, w] = layer.shape, side = mapTile(h), gap = 4;
  const per = Math.max(1, Math.min(C, Math.floor((width + gap) / (side + gap))));
  canvas.width = per * (side + gap) - gap;
  canvas.height = Math.ceil(C / per) * (side + gap) - gap;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  for (let c = 0; c < C; c++) {
    const tile = document.createElement("canvas");
    tile.width = w; tile.height = h;
    drawGrey(tile, layer.values.slice(c * h * w, (c + 1) * h * w), w, h, top);
    ctx.drawImage(tile, (c % per) * (side + gap), Math.floor(c / per) * (side + gap), side, side * h / w);
  }
  canvas.dataset.per = per;
  canvas.dataset.tileW = side + gap;
  canvas.dataset.tileH = side * h / w + gap;
  canvas.dataset.side = side;
}

let resizing = null;
window.addEventListener("resize", () => {   // the grids are laid out for the page's width: lay them out again
  clearTimeout(resizing);
  resizing = setTimeout(() => (state.last ? showInside(state.last.layers) : showBlankInside()), 100);
});

function unitAt(canvas, layer, e) {
  const box = canvas.getBoundingClientRect();
  const x = (e.clientX - box.left) * canvas.width / box.width, y = (e.clientY - box.top) * canvas.height / box.height;
  let j;
  const cell = Number(canvas.dataset.cell);
  if (layer.kind === "units") j = Math.floor(y / cell) * Number(canvas.dataset.cols) + Math.floor(x / cell);
  else j = Math.floor(y / canvas.dataset.tileH) * Number(canvas.dataset.per) + Math.floor(x / canvas.dataset.tileW);
  return j >= 0 && j < layer.shape[0] ? j : null;
}

async function showUnit(layerIndex, unit) {
  state.unit = { layer: layerIndex, unit };
  const query = new URLSearchParams({ model: state.model, layer: layerIndex, unit });
  try {
    const w = await api(`/api/weights?${query}`);
    const layer = state.last && state.last.layers.find((l) => l.index === layerIndex);
    const value = layer && layer.kind === "units" ? ` (output ${layer.values[unit].toFixed(3)})` : "";
    $("#unit-title").textContent = `${layer ? layer.name.split(":")[0] : "layer " + layerIndex}, ${layer && layer.kind === "maps" ? "map" : "unit"} ${unit}${value}`;
    drawWeights($("#unit-canvas"), w.values, w.shape);
    $("#unit-note").textContent = w.shape.length === 2 && w.shape[0] === 28
      ? "Its incoming weights, one per pixel: red where ink excites it, blue where ink inhibits it."
      : `Its incoming weights, shape ${w.shape.join("x")}: red positive, blue negative.`;
    showUnitPanel(true);
  } catch (error) {
    showError($("#draw-error"), error);
  }
}

function drawWeights(canvas, values, shape) {
  // Red for positive, blue for negative, white for zero: a diverging map, scaled by the largest |w|.
  let tiles = 1, h, w;
  if (shape.length === 3) [tiles, h, w] = shape;
  else if (shape.length === 2) [h, w] = shape;
  else { w = Math.ceil(Math.sqrt(shape[0])); h = Math.ceil(shape[0] / w); }
  const per = Math.min(tiles, 8), rows = Math.ceil(tiles / per);
  canvas.width = per * (w + 1);
  canvas.height = rows * (h + 1);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const top = Math.max(1e-9, ...values.map(Math.abs));
  const image = ctx.createImageData(canvas.width, canvas.height);
  image.data.fill(255);
  values.forEach((v, i) => {
    const t = Math.floor(i / (h * w)), r = Math.floor((i % (h * w)) / w), c = i % w;
    const x = (t % per) * (w + 1) + c, y = Math.floor(t / per) * (h + 1) + r;
    const a = Math.min(1, Math.abs(v) / top);
    const rgb = v >= 0 ? [255, 255 * (1 - a), 255 * (1 - a)] : [255 * (1 - a), 255 * (1 - a), 255];
    image.data.set([...rgb.map(Math.round), 255], 4 * (y * canvas.width + x));
  });
  ctx.putImageData(image, 0, 0);
}

// ----------------------------------------------------------------------------------------------------------
// The Learn tab

const form = $("#train-form");
const learn = { presets: {}, source: null, batches: [], epochs: [], drawQueued: false };

function fillPreset(name) {
  const p = learn.presets[name];
  if (!p) return;
  $("#hidden").value = p.hidden.join(",");
  $("#channels").value = p.channels.join(",");
  $("#channels-label").hidden = p.architecture !== "cnn";
  $("#optimizer").value = p.optimizer;
  $("#lr").value = p.lr;
  $("#batch_size").value = p.batch_size;
}

async function loadTraining() {
  const status = await api("/api/train");
  learn.presets = status.presets;
  const limits = status.limits;
  $("#preset").replaceChildren(...limits.preset.map((name) => new Option(name, name)));
  for (const [name, [low, high]] of Object.entries(limits)) {
    const input = form.elements[name];
    if (input && input.type === "number") { input.min = low; input.max = high; }
  }
  $("#epochs").value = status.default_epochs;
  $("#max-minutes").textContent = String(Math.round(status.max_seconds / 60));
  $("#train_images").value = 50000;
  fillPreset(limits.preset[0]);
  if (status.running) follow();
  else if (status.state !== "idle") $("#learn-status").textContent = `Last run: ${status.state}.`;
}

$("#preset").addEventListener("change", (e) => fillPreset(e.target.value));

function widths(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const preset = $("#preset").value;
  const options = {
    preset, hidden: widths($("#hidden").value), optimizer: $("#optimizer").value,
    lr: Number($("#lr").value), epochs: Number($("#epochs").value), batch_size: Number($("#batch_size").value),
    train_images: Number($("#train_images").value),
  };
  if (learn.presets[preset].architecture === "cnn") options.channels = widths($("#channels").value);
  if ($("#init_from").value) options.init_from = $("#init_from").value;
  if ($("#include_examples").checked) options.include_examples = true;
  $("#held-out").hidden = true;
  try {
    const status = await api("/api/train", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(options),
    });
    showError($("#learn-error"), null);
    follow();
  } catch (error) {
    showError($("#learn-error"), error);
  }
});

$("#stop").addEventListener("click", async () => {
  try { await api("/api/train/stop", { method: "POST" }); } catch (error) { showError($("#learn-error"), error); }
});

function follow() {
  // The server keeps only the latest run's events: from the first on, they redraw the whole run.
  if (learn.source) learn.source.close();
  learn.source = new EventSource("/api/train/events");
  learn.source.onmessage = (message) => onEvent(JSON.parse(message.data));
  learn.source.onerror = () => { if (learn.source && learn.source.readyState === EventSource.CLOSED) learn.source = null; };
  $("#start").disabled = true;
  $("#stop").disabled = false;
}

function onEvent(event) {
  const status = $("#learn-status");
  if (event.type === "start") {
    learn.batches = []; learn.epochs = [];
    $("#epochs-table tbody").replaceChildren();
    status.textContent = `Loading the data for a ${event.config.preset} run of ${event.config.epochs} epochs ...`;
  } else if (event.type === "batch") {
    learn.batches.push(event);
  } else if (event.type === "epoch") {
    learn.epochs.push(event);
    const row = document.createElement("tr");
    for (const v of [event.epoch, event.train_loss, event.train_accuracy, event.dev_loss, event.dev_accuracy, event.seconds]) {
      const cell = document.createElement("td");
      cell.textContent = typeof v === "number" && !Number.isInteger(v) ? v.toFixed(4) : String(v);
      row.append(cell);
    }
    $("#epochs-table tbody").append(row);
    status.textContent = `Epoch ${event.epoch} done: dev accuracy ${(100 * event.dev_accuracy).toFixed(2)} %`;
  } else if (event.type === "state") {
    if (event.state === "training") status.textContent = "Training ...";
    else if (event.state === "saving") status.textContent = "Scoring on the test set and saving ...";
    else if (event.state === "done" || event.state === "stopped") {
      const how = event.state === "done" ? "Finished" : `Stopped (${event.reason})`;
      status.textContent = `${how} after ${event.epochs} epochs: test accuracy ${(100 * event.test_accuracy).toFixed(2)} %. ` +
        `Saved as ${event.model}; it is in the Draw tab now.`;
      end();
      if (event.your_examples) showHeldOut(event.your_examples);
      loadModels(event.model).then(() => predictSoon(true));
    } else if (event.state === "failed") {
      status.textContent = "The run failed.";
      showError($("#learn-error"), event.message);
      end();
    }
  }
  if (!learn.drawQueued) {
    learn.drawQueued = true;
    requestAnimationFrame(() => { learn.drawQueued = false; drawCurves(); });
  }
}

function end() {
  if (learn.source) learn.source.close();
  learn.source = null;
  $("#start").disabled = false;
  $("#stop").disabled = true;
}

function drawCurves() {
  const train = (key) => learn.batches.map((b) => [b.epoch, b[key]]);
  const dev = (key) => learn.epochs.map((e) => [e.epoch, e[key]]);
  chart($("#loss-chart"), [
    { points: train("loss"), color: "#98a2b3" }, { points: dev("dev_loss"), color: "#d9480f", dots: true },
  ]);
  chart($("#acc-chart"), [
    { points: train("accuracy"), color: "#98a2b3" }, { points: dev("dev_accuracy"), color: "#d9480f", dots: true },
  ]);
}

function chart(canvas, series) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, L = 46, B = 26, T = 8, R = 14;
  ctx.clearRect(0, 0, W, H);
  const all = series.flatMap((s) => s.points).filter((p) => p[1] != null && Number.isFinite(p[1]));
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#667085";
  if (!all.length) { ctx.fillText("no run yet", L, H / 2); return; }
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  let yMin = Math.min(...all.map((p) => p[1])), yMax = Math.max(...all.map((p) => p[1]));
  if (yMax - yMin < 1e-6) { yMin -= 0.5; yMax += 0.5; }
  const x = (v) => L + (W - L - R) * v / xMax, y = (v) => T + (H - T - B) * (1 - (v - yMin) / (yMax - yMin));
  ctx.strokeStyle = "#d9dde5";
  ctx.beginPath();
  for (let i = 0; i <= 4; i++) {
    const v = yMin + (yMax - yMin) * i / 4;
    ctx.moveTo(L, y(v)); ctx.lineTo(W - R, y(v));
    ctx.fillText(v.toFixed(3), 2, y(v) + 4);
  }
  ctx.stroke();
  for (let e = 0; e <= xMax; e += Math.max(1, Math.ceil(xMax / 10))) ctx.fillText(String(e), x(e) - 3, H - 8);
  ctx.fillText("epochs", 2, H - 8);
  for (const s of series) {
    const pts = s.points.filter((p) => p[1] != null);
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = s.dots ? 2 : 1;
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
    ctx.stroke();
    if (s.dots) for (const p of pts) { ctx.beginPath(); ctx.arc(x(p[0]), y(p[1]), 3.5, 0, 2 * Math.PI); ctx.fill(); }
  }
  ctx.lineWidth = 1;
}

// ----------------------------------------------------------------------------------------------------------
// Your handwriting: confirm or correct an answer, and the drawing is stored with the right label
// (numpynn/web/examples.py); the Learn tab can then fine-tune on the stored examples.

const yours = { storedGeneration: -1 };
$("#correct").replaceChildren(...Array.from({ length: 10 }, (_, k) => {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = String(k);
  button.dataset.label = String(k);
  button.addEventListener("click", () => storeExample(k));
  return button;
}));
$("#right").addEventListener("click", () => { if (state.last) storeExample(state.last.digit); else storeExample(null); });

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(text);
}

async function storeExample(label) {
  const status = $("#yours-status");
  if (!state.drawn || !state.last || label === null) { showError($("#yours-error"), "draw a digit and let the model answer first"); return; }
  if (yours.storedGeneration === state.generation) { showError($("#yours-error"), "this drawing is stored already: Clear and draw another"); return; }
  try {
    // The pad as it is sent for a prediction; the server prepares the 28x28 and asks the model itself.
    const answer = await api("/api/examples", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ pad: base64(padGrey()), label, model: state.last.model }),
    });
    yours.storedGeneration = state.generation;
    showError($("#yours-error"), null);
    showCounts(answer);
    status.dataset.stored = String(answer.id);
    status.prepend(`Stored as a ${answer.label} (${answer.model} said ${answer.predicted}). `);
    yours.last = answer.id;
    $("#undo").hidden = false;
  } catch (error) {
    showError($("#yours-error"), error);
  }
}

$("#undo").addEventListener("click", async () => {
  // Deleting changes state: the token goes with it, as with every change (api() adds it to POSTs only).
  try {
    const answer = await api(`/api/examples?id=${yours.last}`, { method: "DELETE", headers: { "X-Numpynn-Token": TOKEN } });
    showError($("#yours-error"), null);
    showCounts(answer);
    $("#yours-status").prepend(`Example ${yours.last} deleted. `);
    $("#undo").hidden = true;
    if (yours.storedGeneration === state.generation) yours.storedGeneration = -1;   // this drawing may be stored again
  } catch (error) {
    showError($("#yours-error"), error);
  }
});

function showCounts(data) {
  const status = $("#yours-status");
  status.replaceChildren(status.querySelector("#examples-count"), " of your examples stored",
    status.querySelector("#examples-labels"), ".");
  $("#examples-count").textContent = String(data.total);
  $("#examples-count").dataset.total = String(data.total);
  $("#examples-labels").textContent = data.total ? ` (per digit 0-9: ${data.counts.join(" ")})` : "";
  $("#learn-examples").textContent = String(data.total);
}

function fillStartFrom(models) {
  const menu = $("#init_from"), chosen = menu.value;
  menu.replaceChildren(new Option("new weights", ""), ...models.map((m) => new Option(`${m.name} (${m.architecture})`, m.name)));
  menu.value = models.some((m) => m.name === chosen) ? chosen : "";
}

$("#init_from").addEventListener("focus", () => fillStartFrom(state.models));
$("#init_from").addEventListener("change", () => {
  // Fine-tuning keeps the chosen model's network: its hidden widths fill the form (the preset stays yours).
  const model = state.models.find((m) => m.name === $("#init_from").value);
  if (!model) return;
  const dense = [...model.architecture.matchAll(/Dense (\d+)x(\d+)/g)].map((m) => Number(m[2]));
  if (dense.length > 1) $("#hidden").value = dense.slice(0, -1).join(",");
});

function showHeldOut(scores) {
  const shown = (v) => (v === null || v === undefined ? "" : `${(100 * v).toFixed(1)} %`);
  const el = $("#held-out");
  el.hidden = false;
  el.textContent = scores.held_out
    ? `Your held-out examples (${scores.held_out} of them, never trained on; the ${scores.train} others trained on, ` +
      `each ${scores.repeat} times): ` +
      (scores.held_out_accuracy_before !== null ? `${shown(scores.held_out_accuracy_before)} right before, ` : "") +
      `${shown(scores.held_out_accuracy_after)} right after.`
    : `Trained on your ${scores.train} examples; too few to hold any out.`;
  el.dataset.after = String(scores.held_out_accuracy_after);
}

$("#clear").addEventListener("click", () => showError($("#yours-error"), null));
api("/api/examples").then(showCounts).catch((error) => showError($("#yours-error"), error));
api("/api/models").then((data) => fillStartFrom(data.models)).catch(() => {});

// ----------------------------------------------------------------------------------------------------------

clearPad();
drawCurves();
loadModels().catch((error) => showError($("#draw-error"), error));
loadTraining().catch((error) => showError($("#learn-error"), error));
if (location.hash === "#learn") showTab("learn");
