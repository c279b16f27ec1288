// The Images page: search (api/search), select patients/studies/series or a saved cohort
// (api/cohorts), run a workflow on it (api/runs), follow the run, open its result in the viewer.
"use strict";

const api = (path) => `api/${path}`;
const dicomweb = "/dicom-web";
const $ = (selector) => document.querySelector(selector);
let workflows = [];

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

function checkbox(kind, uid, label) {
  const box = element("input", { type: "checkbox", dataset: { kind, uid } });
  box.addEventListener("change", updateSelection);
  return element("label", {}, box, " ", label);
}

function seriesCard(study, series) {
  const thumbnail = element("img", {
    loading: "lazy",
    alt: series.description || series.modality,
    src: `${dicomweb}/studies/${study.uid}/series/${series.uid}/thumbnail?viewport=128,128`,
  });
  thumbnail.addEventListener("error", () => thumbnail.removeAttribute("src"));
  const title = `${series.modality} ${series.description || ""} (${series.instances})`;
  const card = element("div", { className: "series" + (series.result_of ? " result" : "") },
    thumbnail, checkbox("series", series.uid, title));
  if (series.result_of) card.append(element("div", {}, "result of an analysis"));
  return card;
}

function render(answer) {
  const results = $("#results");
  results.replaceChildren();
  let studies = 0;
  for (const patient of answer.patients) {
    const box = element("div", { className: "patient" },
      checkbox("patients", patient.id, `${patient.name.replace("^", ", ")} · ${patient.id}`));
    for (const study of patient.studies) {
      studies += 1;
      const date = study.date ? `${study.date.slice(0, 4)}-${study.date.slice(4, 6)}-${study.date.slice(6)}` : "no date";
      const line = `${date} · ${study.description || "no description"} · ${study.modalities.join("/")}` +
        (study.accession ? ` · accession ${study.accession}` : "");
      box.append(element("div", { className: "study" }, checkbox("studies", study.uid, line),
        element("div", { className: "series-list" }, ...study.series.map((s) => seriesCard(study, s)))));
    }
    results.append(box);
  }
  $("#summary").textContent = `${answer.patients.length} patients, ${studies} studies` +
    (answer.truncated ? " (more match: narrow the search)" : "");
  updateSelection();
}

async function searchImages(event) {
  event?.preventDefault();
  const params = new URLSearchParams(new FormData($("#search-form")));
  const answer = await fetch(`${api("search")}?${params}`);
  const body = await answer.json();
  if (!answer.ok) { $("#summary").textContent = body.detail; return; }
  render(body);
}

function selection() {
  const picked = { patients: [], studies: [], series: [] };
  for (const box of document.querySelectorAll("input[type=checkbox][data-kind]:checked")) {
    picked[box.dataset.kind].push(box.dataset.uid);
  }
  return picked;
}

function updateSelection() {
  const picked = selection();
  const cohort = $("#cohort").value;
  const count = picked.patients.length + picked.studies.length + picked.series.length + (cohort ? 1 : 0);
  $("#selected-count").textContent = cohort ? `Cohort ${cohort}` : count ?
    `Selected: ${picked.patients.length} patients, ${picked.studies.length} studies, ${picked.series.length} series` :
    "Nothing selected";
  $("#run").disabled = count === 0 || !$("#workflow").value;
}

function renderParams() {
  const workflow = workflows.find((item) => item.id === $("#workflow").value);
  const fields = Object.entries(workflow?.params || {}).map(([name, param]) => {
    let input;
    if (param.enum) {
      input = element("select", { name }, ...param.enum.map((value) => element("option", { value }, String(value))));
    } else if (param.type === "boolean") {
      input = element("input", { type: "checkbox", name });
    } else {
      input = element("input", { name, type: ["number", "integer"].includes(param.type) ? "number" : "text" });
    }
    if (param.default !== undefined) {
      if (param.type === "boolean") input.checked = param.default; else input.value = param.default;
    }
    input.dataset.type = param.type;
    return element("label", { title: param.description || "" }, param.title || name, input);
  });
  $("#params").replaceChildren(...fields);
  updateSelection();
}

function paramValues() {
  const values = {};
  for (const input of $("#params").querySelectorAll("[name]")) {
    const type = input.dataset.type;
    if (type === "boolean") values[input.name] = input.checked;
    else if (type === "number") values[input.name] = Number(input.value);
    else if (type === "integer") values[input.name] = parseInt(input.value, 10);
    else if (type === "array") values[input.name] = input.value.split(/[\n,]/).map((v) => v.trim()).filter(Boolean);
    else values[input.name] = input.value;
  }
  return values;
}

async function follow(run) {
  const status = $("#run-status");
  const answer = await fetch(api(`runs/${encodeURIComponent(run.dag_id)}/${encodeURIComponent(run.run_id)}`));
  const body = await answer.json();
  if (!answer.ok) { status.textContent = body.detail; return; }
  status.replaceChildren(element("span", { id: "run-state" }, `Run ${run.run_id}: ${body.state}`), " ",
    element("a", { href: run.airflow_url, target: "_top" }, "in Airflow"));
  for (const step of body.steps || []) {
    const line = element("div", { className: step.state === "failed" ? "error" : "" },
      `${step.step}${step.series ? " [" + step.series + "]" : ""}: ${step.state}${step.note ? " — " + step.note : ""}`);
    if (step.progress) {  // the operator's last progress report (openjip.sdk.progress)
      const percent = Math.round(step.progress.fraction * 100);
      line.append(" ", element("progress", { max: 100, value: percent, className: "step-progress" }),
        element("span", { className: "step-progress-text" }, ` ${percent}% ${step.progress.message}`));
    }
    status.append(line);
  }
  if (body.state === "success") {
    status.append(" ", element("a", { id: "open-viewer", href: `runs/${run.dag_id}/${run.run_id}/viewer`, target: "_blank" }, "Open in viewer"));
    for (const output of body.outputs || []) {
      if (!output.dicom) status.append(" ", element("a", { href: output.download, className: "download" }, output.path));
    }
  } else if (body.state !== "failed") {
    setTimeout(() => follow(run), 2000);
  }
}

async function runWorkflow() {
  const cohort = $("#cohort").value;
  const body = { workflow: $("#workflow").value, ...(cohort ? { cohort } : selection()), params: paramValues() };
  const answer = await fetch(api("runs"), {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const run = await answer.json();
  if (!answer.ok) { $("#run-status").replaceChildren(element("span", { className: "error" }, run.detail)); return; }
  $("#run-status").textContent = `Started ${run.run_id} on ${run.series.length} series`;
  follow(run);
}

async function loadCohorts(chosen = "") {
  const answer = await fetch(api("cohorts"));
  const cohorts = answer.ok ? await answer.json() : [];
  $("#cohort").replaceChildren(element("option", { value: "" }, "(the selection)"),
    ...cohorts.map((c) => element("option", { value: c.name, title: c.description }, c.name)));
  $("#cohort").value = chosen;
  updateSelection();
}

async function saveCohort() {
  const body = { name: $("#cohort-name").value, ...selection() };
  const answer = await fetch(api("cohorts"), {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const saved = await answer.json();
  $("#run-status").replaceChildren(answer.ok ? `Saved cohort ${saved.name}` :
    element("span", { className: "error" }, saved.detail));
  if (answer.ok) loadCohorts(saved.name);
}

async function start() {
  const answer = await fetch(api("workflows"));
  workflows = answer.ok ? await answer.json() : [];
  $("#workflow").replaceChildren(...workflows.map((w) => element("option", { value: w.id }, w.title)));
  $("#workflow").addEventListener("change", renderParams);
  $("#search-form").addEventListener("submit", searchImages);
  $("#sort").addEventListener("change", () => searchImages());
  $("#run").addEventListener("click", runWorkflow);
  $("#save-cohort").addEventListener("click", saveCohort);
  $("#cohort").addEventListener("change", updateSelection);
  renderParams();
  loadCohorts();
  const query = new URLSearchParams(location.search);
  if (query.get("name")) { $("#name").value = query.get("name"); searchImages(); }
}

start();
