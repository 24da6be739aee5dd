// illustration-gan explorer: plain JavaScript, no build step, no external assets.
"use strict";

const MAX_SEED = 2147483647;
const SLIDER_STEPS = 32;
const RANDOM_SEEDS = 1000000;
const GRID_CHUNK = 16;  // faces per request while a grid loads  // "new faces" draws start seeds below this (short to read); any seed works
const $ = (id) => document.getElementById(id);

const state = {
  seed: null,      // first seed of the grid
  gridToken: 0,    // which grid request is the newest
  interpToken: 0,  // which interpolation is the newest
  count: 32,
  dialogSeed: null,
  a: null,
  b: null,
  playing: null,   // interval id of the slider animation
  run: null,
};

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  }
  return body;
}

function parseSeed(text) {
  const value = String(text).trim();
  if (!/^[0-9]{1,10}$/.test(value) || Number(value) > MAX_SEED) return null;
  return Number(value);
}

function randomSeed(count) {
  return Math.floor(Math.random() * (RANDOM_SEEDS - count + 1));
}

// ------------------------------------------------------------------ the grid

// The grid arrives in chunks (one batched forward pass each), so the first faces show
// quickly even for a heavy generator; a newer click abandons an older grid.
async function loadFaces(seed, count) {
  const token = ++state.gridToken;
  state.seed = seed;
  state.count = count;
  const images = renderGrid(seed, count);
  $("grid").classList.add("loading");
  $("grid-info").textContent = `seeds ${seed}\u2013${seed + count - 1} \u00b7 generating\u2026`;
  $("grid-download").href = `/api/grid.png?seed=${seed}&count=${count}&download=1`;
  history.replaceState(null, "", `#seed=${seed}&count=${count}`);
  let milliseconds = 0;
  try {
    for (let start = 0; start < count; start += GRID_CHUNK) {
      const n = Math.min(GRID_CHUNK, count - start);
      const data = await getJSON(`/api/faces?seed=${seed + start}&count=${n}`);
      if (token !== state.gridToken) return;
      data.faces.forEach((face, i) => {
        images[start + i].src = face.url;
        images[start + i].alt = `generated face, seed ${face.seed}`;
      });
      milliseconds += data.milliseconds;
    }
    showMessage("");
    $("grid-info").textContent = `seeds ${seed}\u2013${seed + count - 1} \u00b7 generated in ${Math.round(milliseconds)} ms`;
    if (state.a === null && state.b === null && count >= 2) {
      // Something to look at straight away: the first two faces of the first grid.
      setEnd("a", seed);
      setEnd("b", seed + 1);
      startInterpolation();
    }
  } catch (error) {
    if (token === state.gridToken) showMessage(`Could not generate faces: ${error.message}`);
  } finally {
    if (token === state.gridToken) $("grid").classList.remove("loading");
  }
}

function renderGrid(seed, count) {
  const images = [];
  const cards = [];
  for (let s = seed; s < seed + count; s += 1) {
    const figure = document.createElement("figure");
    figure.className = "face";
    const button = document.createElement("button");
    button.type = "button";
    button.title = `open face ${s}`;
    const img = document.createElement("img");
    img.alt = "";
    img.dataset.seed = String(s);
    button.appendChild(img);
    button.addEventListener("click", () => openFace(s));
    const caption = document.createElement("figcaption");
    caption.textContent = `seed ${s}`;
    figure.append(button, caption);
    images.push(img);
    cards.push(figure);
  }
  $("grid").replaceChildren(...cards);
  return images;
}

// ------------------------------------------------------------------ one face

async function openFace(seed) {
  state.dialogSeed = seed;
  $("dialog-title").textContent = `Face, seed ${seed}`;
  $("dialog-img").src = `/api/face/${seed}.png`;
  $("dialog-img").alt = `generated face, seed ${seed}`;
  $("dialog-download").href = `/api/face/${seed}.png?download=1`;
  $("dialog-download").setAttribute("download", `face-seed${seed}.png`);
  const dialog = $("face-dialog");
  if (!dialog.open) dialog.showModal();
  const box = $("nearest");
  box.replaceChildren();
  const info = $("nearest-info");
  if (state.run && !state.run.nearest.available) {
    info.textContent = `Not available: ${state.run.nearest.reason}.`;
    return;
  }
  info.textContent = "searching the training images\u2026 (the first search decodes them)";
  try {
    const data = await getJSON(`/api/nearest/${seed}?k=5`);
    if (state.dialogSeed !== seed) return;  // another face was opened meanwhile
    info.textContent = `The ${data.k} training images closest in pixels (mean squared error) among ${data.searched}` +
      (data.total > data.searched ? ` of ${data.total}` : "") +
      ". Near-copies here would mean the generator memorised its data.";
    box.replaceChildren(...data.neighbours.map((n) => {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = n.url;
      img.alt = `training image ${n.name}`;
      img.title = `${n.name} (MSE ${n.mse})`;
      const caption = document.createElement("figcaption");
      caption.append(n.name, document.createElement("br"), `MSE ${n.mse.toFixed(1)}`);
      figure.append(img, caption);
      return figure;
    }));
  } catch (error) {
    if (state.dialogSeed === seed) info.textContent = `Not available: ${error.message}`;
  }
}

// ------------------------------------------------------------------ interpolation

function interpolationMode() {
  return (state.run && state.run.interpolation) || "slerp";
}

function frameURL(t) {
  return `/api/interpolate.png?a=${state.a}&b=${state.b}&t=${t.toFixed(4)}&mode=${interpolationMode()}`;
}

function setEnd(which, seed) {
  state[which] = seed;
  $(`seed-${which}`).value = String(seed);
  $(`interp-${which}`).src = `/api/face/${seed}.png`;
  $(`interp-${which}`).alt = `face ${which.toUpperCase()}, seed ${seed}`;
  $(`interp-${which}-label`).textContent = `${which.toUpperCase()} \u00b7 seed ${seed}`;
}

function showFrame() {
  const i = Number($("interp-t").value);
  const t = i / SLIDER_STEPS;
  $("interp-frame").src = frameURL(t);
  $("interp-frame").alt = `interpolated face at t = ${t.toFixed(2)}`;
  $("interp-label").textContent = `t = ${t.toFixed(2)} (${interpolationMode()})`;
}

function startInterpolation() {
  const a = parseSeed($("seed-a").value);
  const b = parseSeed($("seed-b").value);
  if (a === null || b === null) {
    $("interp-label").textContent = `seeds are whole numbers from 0 to ${MAX_SEED}`;
    return;
  }
  stopPlaying();
  setEnd("a", a);
  setEnd("b", b);
  const slider = $("interp-t");
  slider.disabled = false;
  $("interp-play").disabled = false;
  const steps = Number($("gif-steps").value);
  const gif = $("interp-gif");
  gif.href = `/api/interpolate.gif?a=${a}&b=${b}&steps=${steps}&mode=${interpolationMode()}&download=1`;
  gif.setAttribute("download", `interpolation-${a}-${b}.gif`);
  gif.classList.remove("disabled");
  showFrame();
  preloadFrames(++state.interpToken);
}

// Warms the slider's frames one at a time (so that dragging it is smooth), never holding
// the generator for long: a grid requested meanwhile waits for one frame at most.
async function preloadFrames(token) {
  for (let i = 0; i <= SLIDER_STEPS; i += 1) {
    if (token !== state.interpToken) return;
    await new Promise((resolve) => {
      const img = new Image();
      img.onload = img.onerror = resolve;
      img.src = frameURL(i / SLIDER_STEPS);
    });
  }
}

function stopPlaying() {
  if (state.playing !== null) {
    clearInterval(state.playing);
    state.playing = null;
    $("interp-play").textContent = "Play";
  }
}

function togglePlay() {
  if (state.playing !== null) { stopPlaying(); return; }
  let direction = 1;
  $("interp-play").textContent = "Stop";
  state.playing = setInterval(() => {
    const slider = $("interp-t");
    let i = Number(slider.value) + direction;
    if (i > SLIDER_STEPS || i < 0) { direction = -direction; i += 2 * direction; }
    slider.value = String(i);
    showFrame();
  }, 90);
}

// ------------------------------------------------------------------ the run

function fact(list, term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  list.append(dt, dd);
}

function fmt(x) {
  return typeof x === "number" ? (Number.isInteger(x) ? String(x) : x.toFixed(3)) : (x ?? "\u2013");
}

async function loadRun() {
  try {
    const run = await getJSON("/api/run");
    state.run = run;
    document.title = `${run.name} \u00b7 illustration-gan`;
    $("run-line").textContent = `${run.name} \u00b7 ${run.preset} (${run.architecture}), ${run.image_size}\u00d7${run.image_size}, ` +
      `epoch ${run.epochs_done} of ${fmt(run.epochs_planned)}`;
    const list = $("run-facts");
    list.replaceChildren();
    fact(list, "run", run.name);
    fact(list, "model", `${run.preset} \u00b7 architecture ${run.architecture} \u00b7 G width ${fmt(run.g_width)}, D width ${fmt(run.d_width)}`);
    fact(list, "images", `${run.image_size}\u00d7${run.image_size}, z ${run.z_dim}-d (${fmt(run.z_distribution)})`);
    fact(list, "epochs", `${run.epochs_done} of ${fmt(run.epochs_planned)} (${fmt(run.steps)} steps, batch ${fmt(run.batch_size)})`);
    const last = run.last_epoch;
    fact(list, "last epoch", Object.keys(last).length
      ? Object.entries(last).map(([k, v]) => `${k} ${fmt(v)}`).join(" \u00b7 ") : "no epoch finished yet");
    fact(list, "dataset", run.dataset.name ? `${run.dataset.name} (${fmt(run.dataset.num_images)} images)` : "\u2013");
    fact(list, "FID", run.fid.length
      ? run.fid.map((f) => `${f.name} ${f.value}` + (f.epoch != null ? ` (epoch ${f.epoch})` : "")).join(" \u00b7 ")
      : "not measured");
    fact(list, "nearest neighbours", run.nearest.available ? `among the training images of ${run.nearest.name}` : `off: ${run.nearest.reason}`);
    setRunImage("losses-img", run.images["losses.png"]);
    setRunImage("latest-grid-img", run.images["latest_grid.png"]);
  } catch (error) {
    $("run-line").textContent = `Could not read the run: ${error.message}`;
  }
}

function setRunImage(id, url) {
  const img = $(id);
  const figure = img.closest("figure");
  if (url) {
    img.src = `${url}?t=${Date.now()}`;
    img.alt = id === "losses-img" ? "loss curves of the run" : "the run's latest sample grid";
    figure.hidden = false;
  } else {
    figure.hidden = true;
  }
}

// ------------------------------------------------------------------ start

function initialGrid() {
  const params = new URLSearchParams(location.hash.slice(1));
  const count = Number(params.get("count"));
  if ([16, 32, 64].includes(count)) $("count").value = String(count);
  const seed = parseSeed(params.get("seed") ?? "");
  const n = Number($("count").value);
  loadFaces(seed !== null && seed + n - 1 <= MAX_SEED ? seed : randomSeed(n), n);
}

document.addEventListener("DOMContentLoaded", () => {
  $("new-faces").addEventListener("click", () => {
    const n = Number($("count").value);
    loadFaces(randomSeed(n), n);
  });
  $("count").addEventListener("change", () => {
    const n = Number($("count").value);
    loadFaces(state.seed !== null && state.seed + n - 1 <= MAX_SEED ? state.seed : randomSeed(n), n);
  });
  $("seed-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const seed = parseSeed($("seed-input").value);
    if (seed === null) {
      showMessage(`A seed is a whole number from 0 to ${MAX_SEED}.`);
      return;
    }
    showMessage("");
    openFace(seed);
  });
  $("dialog-close").addEventListener("click", () => $("face-dialog").close());
  $("face-dialog").addEventListener("click", (event) => {
    if (event.target === $("face-dialog")) $("face-dialog").close();  // a click on the backdrop
  });
  $("use-a").addEventListener("click", () => { setEnd("a", state.dialogSeed); $("face-dialog").close(); maybeInterpolate(); });
  $("use-b").addEventListener("click", () => { setEnd("b", state.dialogSeed); $("face-dialog").close(); maybeInterpolate(); });
  $("interp-form").addEventListener("submit", (event) => { event.preventDefault(); startInterpolation(); });
  $("interp-t").addEventListener("input", () => { stopPlaying(); showFrame(); });
  $("interp-play").addEventListener("click", togglePlay);
  $("gif-steps").addEventListener("change", () => { if (state.a !== null && state.b !== null) startInterpolation(); });
  const pixelated = $("pixelated");
  const applyPixelated = () => document.body.classList.toggle("pixelated", pixelated.checked);
  pixelated.addEventListener("change", applyPixelated);
  applyPixelated();
  loadRun().then(initialGrid);
});

function maybeInterpolate() {
  if (parseSeed($("seed-a").value) !== null && parseSeed($("seed-b").value) !== null) {
    startInterpolation();
    $("interp-section").scrollIntoView({ behavior: "smooth", block: "start" });
  }
}
