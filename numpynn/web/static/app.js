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
}

$("#model").addEventListener("change", (e) => {
  state.model = e.target.value;
  state.unit = null;
  $("#unit").hidden = true;
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
    const query = `/api/predict?model=${encodeURIComponent(state.model)}`;
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
  delete verdict.dataset.digit;
  for (const li of bars.children) {
    li.className = "";
    li.querySelector(".fill").style.width = "0";
    li.querySelector(".pct").textContent = "";
  }
  const seen = $("#seen").getContext("2d");
  seen.fillStyle = "#000";
  seen.fillRect(0, 0, 28, 28);
  $("#inside").replaceChildren();
  $("#unit").hidden = true;
}

function showAnswer(answer) {
  state.last = answer;
  const P = answer.probabilities;
  const verdict = $("#verdict");
  verdict.textContent = `It's a ${answer.digit}  (${(100 * P[answer.digit]).toFixed(1)} %)`;
  verdict.className = "verdict";
  verdict.dataset.state = "digit";
  verdict.dataset.digit = String(answer.digit);
  [...bars.children].forEach((li, k) => {
    li.className = k === answer.digit ? "top" : "";
    li.querySelector(".fill").style.width = `${100 * P[k]}%`;
    li.querySelector(".pct").textContent = `${(100 * P[k]).toFixed(1)} %`;
  });
  drawGrey($("#seen"), answer.input.flat(), 28, 28);
  showInside(answer.layers);
  if (state.unit) showUnit(state.unit.layer, state.unit.unit);
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

// Hidden layers: dense units as a grid of cells (brightness: the unit's output over the layer's largest);
// feature maps as a row of small pictures. Click a unit for its incoming weights.
function unitGrid(n) {
  const cols = Math.min(n, Math.ceil(Math.sqrt(n * 3)));   // about three times as wide as tall
  const cell = Math.max(6, Math.min(24, Math.floor(360 / cols)));
  return { cols, rows: Math.ceil(n / cols), cell };
}

function showInside(layers) {
  const box = $("#inside");
  const panels = layers.map((layer) => {
    const panel = document.createElement("div");
    panel.className = "panel";
    const title = document.createElement("h2");
    title.textContent = layer.name;
    const canvas = document.createElement("canvas");
    canvas.dataset.layer = layer.index;
    const top = Math.max(1e-6, ...layer.values.map(Math.abs));
    if (layer.kind === "units") drawUnits(canvas, layer, top);
    else drawMaps(canvas, layer, top);
    canvas.addEventListener("click", (e) => {
      const unit = unitAt(canvas, layer, e);
      if (unit !== null) showUnit(layer.index, unit);
    });
    const note = document.createElement("p");
    note.className = "hint";
    note.textContent = "Click a " + (layer.kind === "units" ? "unit" : "map") + " to see its incoming weights.";
    panel.append(title, canvas, note);
    return panel;
  });
  box.replaceChildren(...panels);
}

function drawUnits(canvas, layer, top) {
  const n = layer.values.length, { cols, rows, cell } = unitGrid(n);
  canvas.width = cols * cell;
  canvas.height = rows * cell;
  canvas.dataset.cols = cols;
  canvas.dataset.cell = cell;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  layer.values.forEach((v, j) => {
    const a = Math.max(0, v) / top;   // ReLU outputs are >= 0; tanh's negatives show dark
    ctx.fillStyle = `rgb(${Math.round(255 * a)}, ${Math.round(200 * a)}, ${Math.round(90 * a)})`;
    ctx.fillRect((j % cols) * cell, Math.floor(j / cols) * cell, cell - 1, cell - 1);
  });
}

function drawMaps(canvas, layer, top) {
  const [C, h, w] = layer.shape, scale = Math.max(1, Math.floor(28 / h)), per = 8;
  canvas.width = Math.min(C, per) * (w * scale + 2);
  canvas.height = Math.ceil(C / per) * (h * scale + 2);
  const ctx = canvas.getContext("2d");
  for (let c = 0; c < C; c++) {
    const tile = document.createElement("canvas");
    tile.width = w; tile.height = h;
    drawGrey(tile, layer.values.slice(c * h * w, (c + 1) * h * w), w, h, top);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tile, (c % per) * (w * scale + 2), Math.floor(c / per) * (h * scale + 2), w * scale, h * scale);
  }
  canvas.dataset.per = per;
  canvas.dataset.tileW = w * scale + 2;
  canvas.dataset.tileH = h * scale + 2;
}

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
    $("#unit").hidden = false;
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

clearPad();
drawCurves();
loadModels().catch((error) => showError($("#draw-error"), error));
loadTraining().catch((error) => showError($("#learn-error"), error));
if (location.hash === "#learn") showTab("learn");
