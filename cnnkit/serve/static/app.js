// cnnkit serve's page: pick or drop a photo -> POST /predict (bars) and POST /explain (heat map).
// Plain JS, no build step. Every answer the page shows comes from the JSON API (see /docs).
"use strict";

const $ = (id) => document.getElementById(id);
let canExplain = false;

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error || JSON.stringify(body);
  } catch (e) {
    return `${response.status} ${response.statusText}`;
  }
}

async function loadInfo() {
  try {
    const response = await fetch("/models");
    const info = (await response.json()).loaded;
    canExplain = info.explain;
    $("model-info").textContent =
      `model: ${info.model} (${info.runtime}), ${info.num_classes} classes` + (canExplain ? ", heat maps on" : "");
  } catch (e) {
    $("model-info").textContent = "model information unavailable";
  }
}

function renderBars(topk) {
  const bars = $("bars");
  bars.replaceChildren();
  for (const item of topk) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = item.label;
    label.title = `class ${item.index}`;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${(100 * item.prob).toFixed(1)}%`;
    bar.appendChild(fill);
    const prob = document.createElement("span");
    prob.className = "prob";
    prob.textContent = `${(100 * item.prob).toFixed(1)}%`;
    li.append(label, bar, prob);
    bars.appendChild(li);
  }
}

async function explain(form) {
  $("cam-figure").hidden = true;
  if (!canExplain) return;
  const response = await fetch("/explain", { method: "POST", body: form });
  if (!response.ok) {
    $("status").textContent = `no heat map: ${await errorText(response)}`;
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  $("cam").onload = () => { document.body.dataset.cam = "ready"; };
  $("cam").src = url;
  $("cam-figure").hidden = false;
}

async function classify(file) {
  showError("");
  document.body.dataset.state = "working";
  delete document.body.dataset.cam;
  $("status").textContent = `classifying ${file.name}...`;
  $("preview").src = URL.createObjectURL(file);
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const response = await fetch("/predict", { method: "POST", body: form });
    if (!response.ok) throw new Error(await errorText(response));
    const result = await response.json();
    const top = result.topk[0];
    $("answer").textContent = top.label;
    $("answer-prob").textContent = `(${(100 * top.prob).toFixed(1)}%)`;
    renderBars(result.topk);
    $("timing").textContent = `decode ${result.ms.decode} ms, model ${result.ms.model} ms (${result.runtime})`;
    $("result").hidden = false;
    $("status").textContent = "";
    document.body.dataset.state = "done";
    await explain(form);
  } catch (e) {
    $("result").hidden = true;
    $("status").textContent = "";
    showError(e.message);
    document.body.dataset.state = "error";
  }
}

$("file").addEventListener("change", (event) => {
  if (event.target.files.length) classify(event.target.files[0]);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) classify(event.dataTransfer.files[0]);
});
loadInfo();
