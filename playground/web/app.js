// The playground page: an editor, a request form, and live results from window.gatewayWasm.
//
// Two modes, chosen by <meta name="gateway-wasm-mode">:
// - "playground" (cargo xtask playground): manifests typed or picked from examples.json; the
//   state (manifests + request) lives in the URL fragment so a link reproduces a case;
// - "live" (controller-shim run, at /ui): read-only; the manifests the shim watches and the
//   configuration each Gateway's proxies run now come from live.json, refreshed every few seconds,
//   and requests are explained against that running configuration.

import { ready } from "./gateway-wasm.js";
import { draw } from "./topology.js";

const $ = (id) => document.getElementById(id);
const MODE = document.querySelector('meta[name="gateway-wasm-mode"]')?.content === "live" ? "live" : "playground";
const LIVE_REFRESH_MS = 5000;

const state = { api: null, examples: [], live: null, timer: 0, fragmentTimer: 0, saves: 0 };

// ---------------------------------------------------------------------------------------------
// The request form

const isGrpc = () => $("kind").value === "grpc";

/** The CLI's --request: 'METHOD URL'; a gRPC call takes only the URL (its method is POST). */
function requestLine() {
  return isGrpc() ? $("url").value.trim() : `${$("method").value} ${$("url").value.trim()}`;
}

/** The CLI's --grpc SERVICE/METHOD, or null for an HTTP request. */
function grpcCall() {
  return isGrpc() ? $("grpc").value.trim() : null;
}

/** Shows the service/method input for a gRPC call, the method picker for HTTP. */
function showKind() {
  $("grpc-row").hidden = !isGrpc();
  $("method").hidden = isGrpc();
}

/** Header lines `name: value` as [name, value] pairs, in order; a line without ':' is an error. */
function headerPairs() {
  const pairs = [];
  for (const raw of $("headers").value.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf(":");
    if (at < 0) throw new Error(`header line ${JSON.stringify(line)} is not 'name: value'`);
    pairs.push([line.slice(0, at), line.slice(at + 1)]);
  }
  return pairs;
}

function shellQuote(text) {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

function cliLine(pairs, gateway, grpc) {
  const parts = ["controller-shim explain --manifests DIR --json", `--request ${shellQuote(requestLine())}`];
  if (grpc !== null) parts.push(`--grpc ${shellQuote(grpc)}`);
  for (const [name, value] of pairs) parts.push(`-H ${shellQuote(`${name.trim()}: ${value.trim()}`)}`);
  if (gateway) parts.push(`--gateway ${gateway}`);
  return parts.join(" ");
}

// ---------------------------------------------------------------------------------------------
// Rendering

function text(tag, content, cls) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  node.textContent = content;
  return node;
}

function renderErrors(resolved) {
  const errors = $("errors");
  errors.hidden = resolved.errors.length === 0;
  errors.textContent = resolved.errors.map((e) => e.text).join("\n");
  const warnings = $("warnings");
  warnings.hidden = resolved.warnings.length === 0;
  warnings.textContent = resolved.warnings.join("\n");
}

/** The gRPC codes the gateway answers with itself (docs/playground.md, grpcStatus). */
const GRPC_CODES = { 12: "UNIMPLEMENTED", 14: "UNAVAILABLE" };

function editLines(edits) {
  return edits.map((e) => (e.op === "remove" ? `remove ${e.name}` : `${e.op} ${e.name}: ${e.value}`)).join("\n");
}

function renderDecision(explanation, error) {
  const box = $("decision");
  box.className = "decision";
  box.replaceChildren();
  if (error) {
    box.classList.add("error");
    box.append(text("div", error));
    return;
  }
  const d = explanation.decision;
  const head = document.createElement("div");
  head.append(text("span", d.kind, `kind ${d.kind}`), " ");
  let summary;
  if (d.kind === "forward") summary = `to ${d.backend}`;
  else if (d.kind === "redirect") summary = `${d.status} to ${d.location}`;
  else if (d.grpcStatus !== null) summary = `${d.status}, grpc-status ${d.grpcStatus} ${GRPC_CODES[d.grpcStatus] ?? ""} (${d.reason})`;
  else summary = `${d.status} (${d.reason})`;
  head.append(text("span", summary, "summary"));
  box.append(head);
  const dl = document.createElement("dl");
  const row = (label, value) => {
    if (value === null || value === undefined || value === "") return;
    dl.append(text("dt", label), text("dd", String(value)));
  };
  row("gateway", explanation.gateway);
  row("listener", explanation.listener ?? "(none)");
  if (d.route) {
    row("route", `${d.route.kind} ${d.route.namespace}/${d.route.name}`);
    row("rule", `rules[${d.route.rule}]${d.route.ruleName ? ` (${d.route.ruleName})` : ""}, matches[${d.route.match}]`);
  } else {
    row("route", "(none)");
  }
  row("backend", d.backend);
  if (d.upstream && d.upstream !== d.backend) row("upstream", d.upstream);
  row("message", d.message);
  row("path", d.path && `rewritten to ${d.path}`);
  row("host", d.host && `rewritten to ${d.host}`);
  row("request headers", editLines(d.requestHeaders));
  row("response headers", editLines(d.responseHeaders));
  row("timeouts", [d.requestTimeoutMs !== null ? `request ${d.requestTimeoutMs} ms` : "", d.backendRequestTimeoutMs !== null ? `backend ${d.backendRequestTimeoutMs} ms` : ""].filter(Boolean).join(", "));
  row("retry", d.retry && `${d.retry.attempts} attempts${d.retry.codes.length ? ` on ${d.retry.codes.join(", ")}` : ""}`);
  row("mirrors", d.mirrors.map((m) => m.backend).join(", "));
  box.append(dl);
}

function renderTrace(explanation) {
  const list = $("trace");
  list.replaceChildren(...(explanation ? explanation.trace.map((line) => text("li", line)) : []));
}

const ABNORMAL_TRUE = new Set(["Conflicted", "PartiallyInvalid", "OverlappingTLSConfig"]);

function conditionsTable(caption, conditions) {
  const table = document.createElement("table");
  table.append(text("caption", caption));
  const head = document.createElement("tr");
  for (const h of ["type", "status", "reason", "message"]) head.append(text("th", h));
  table.append(head);
  for (const c of conditions || []) {
    const tr = document.createElement("tr");
    tr.append(text("td", c.type));
    const bad = ABNORMAL_TRUE.has(c.type) ? c.status === "True" : c.status === "False";
    tr.append(text("td", c.status, bad ? "abnormal" : c.status));
    tr.append(text("td", c.reason), text("td", c.message));
    table.append(tr);
  }
  return table;
}

function renderStatus(resolved) {
  const box = $("status");
  const tables = [];
  for (const entry of resolved.status) {
    const s = entry.status || {};
    if (entry.kind === "HTTPRoute" || entry.kind === "GRPCRoute") {
      for (const parent of s.parents || []) {
        const ref = parent.parentRef;
        const where = `${ref.namespace ? ref.namespace + "/" : ""}${ref.name}${ref.sectionName ? " (" + ref.sectionName + ")" : ""}`;
        tables.push(conditionsTable(`${entry.kind} ${entry.name} → parent ${where}`, parent.conditions));
      }
    } else {
      tables.push(conditionsTable(`${entry.kind} ${entry.name}`, s.conditions));
      for (const listener of s.listeners || []) {
        tables.push(conditionsTable(`${entry.kind} ${entry.name} listener ${listener.name} (attachedRoutes: ${listener.attachedRoutes})`, listener.conditions));
      }
    }
  }
  if (tables.length === 0) tables.push(text("p", "No object is ours: add a GatewayClass whose controllerName is gateway-wasm.dev/controller-shim.", "empty"));
  box.replaceChildren(...tables);
}

/** Node ids on the decision's path, for the diagram. */
function hitsOf(explanation, topology) {
  const hits = new Set();
  if (!explanation) return hits;
  const gw = explanation.gateway;
  hits.add(`Gateway:${gw}`);
  for (const e of topology.edges) if (e.to === `Gateway:${gw}` && e.ok) hits.add(e.from);
  if (explanation.listener) hits.add(`Listener:${gw}/${explanation.listener}`);
  const d = explanation.decision;
  if (d.route) {
    const key = `${d.route.namespace}/${d.route.name}`;
    hits.add(`${d.route.kind}:${key}`);
    // topology.rs rule_key: a GRPCRoute's rules carry its kind (the kinds may share a name).
    hits.add(d.route.kind === "HTTPRoute" ? `Rule:${key}/${d.route.rule}` : `Rule:${d.route.kind}:${key}/${d.route.rule}`);
  }
  if (d.backend) hits.add(`Backend:${d.backend}`);
  return hits;
}

function renderTopology(resolved, explanation) {
  const box = $("topology");
  if (resolved.topology.nodes.length === 0) {
    box.replaceChildren(text("div", "Nothing to draw yet.", "empty"));
    return;
  }
  draw(box, resolved.topology, hitsOf(explanation, resolved.topology));
}

function renderGatewayPicker(names, wanted) {
  const picker = $("gateway");
  const current = wanted ?? picker.value;
  $("gateway-picker").hidden = names.length < 2;
  if ([...picker.options].map((o) => o.value).join() !== names.join()) {
    picker.replaceChildren(...names.map((n) => Object.assign(document.createElement("option"), { value: n, textContent: n })));
  }
  if (names.includes(current)) picker.value = current;
  return names.length > 1 ? picker.value : null;
}

// ---------------------------------------------------------------------------------------------
// One evaluation of everything on the page

function evaluate() {
  const api = state.api;
  const manifests = $("editor").value;
  const resolved = api.resolve(manifests);
  renderErrors(resolved);
  renderStatus(resolved);
  const names = MODE === "live" ? state.live.gateways.map((g) => g.gateway) : resolved.gateways.map((g) => g.gateway);
  const gateway = renderGatewayPicker(names);
  let explanation = null;
  let error = null;
  try {
    const pairs = headerPairs();
    const grpc = grpcCall();
    $("cli").textContent = cliLine(pairs, gateway, grpc);
    const options = grpc !== null ? { grpc } : {};
    if (MODE === "live") {
      const running = state.live.gateways.find((g) => g.gateway === (gateway ?? names[0]));
      if (!running) throw new Error("the shim has delivered no configuration yet");
      explanation = api.explainConfig(running.config, requestLine(), pairs, options);
    } else {
      if (gateway) options.gateway = gateway;
      explanation = api.explain(manifests, requestLine(), pairs, options);
    }
  } catch (e) {
    error = e.message || String(e);
  }
  renderDecision(explanation, error);
  renderTrace(explanation);
  $("json").textContent = explanation ? JSON.stringify(explanation, null, 2) : "";
  renderTopology(resolved, explanation);
  document.body.dataset.evaluated = String(Number(document.body.dataset.evaluated || 0) + 1);
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(() => {
    evaluate();
    saveFragment();
  }, 120);
}

// ---------------------------------------------------------------------------------------------
// The URL fragment: #v1.<base64url(deflate-raw(JSON))>, or #v0.<base64url(JSON)> where the
// browser has no CompressionStream.

function toBase64Url(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromBase64Url(text) {
  const s = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

async function pipe(bytes, stream) {
  return new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(stream)).arrayBuffer());
}

async function encodeState() {
  const json = new TextEncoder().encode(JSON.stringify({
    m: $("editor").value, r: requestLine(), h: $("headers").value, g: $("gateway").value || undefined,
    // gRPC: the kind, and the service/method typed (kept while the form shows HTTP).
    k: isGrpc() ? "grpc" : undefined, s: $("grpc").value || undefined,
  }));
  if (typeof CompressionStream === "function") return "v1." + toBase64Url(await pipe(json, new CompressionStream("deflate-raw")));
  return "v0." + toBase64Url(json);
}

async function decodeState(fragment) {
  const [version, data] = fragment.split(".", 2);
  if (!data) return null;
  let bytes = fromBase64Url(data);
  if (version === "v1") bytes = await pipe(bytes, new DecompressionStream("deflate-raw"));
  else if (version !== "v0") return null;
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** Saves the state into the fragment soon; `body[data-fragment]` is "saved" once the fragment
 * holds the latest state (tests and scripts wait for it), "pending" before. */
function saveFragment() {
  if (MODE !== "playground") return;
  clearTimeout(state.fragmentTimer);
  const save = ++state.saves;
  document.body.dataset.fragment = "pending";
  state.fragmentTimer = setTimeout(async () => {
    const fragment = await encodeState();
    if (save !== state.saves) return; // a newer state is on its way
    history.replaceState(null, "", "#" + fragment);
    document.body.dataset.fragment = "saved";
  }, 300);
}

/** Fills the form: request line, header lines, and for a gRPC call (`kind` "grpc") its RPC. */
function applyRequest(line, headers, kind, rpc) {
  $("kind").value = kind === "grpc" ? "grpc" : "http";
  $("grpc").value = rpc || "";
  showKind();
  const [method, ...rest] = line.trim().split(/\s+/);
  const url = rest.join(" ");
  if (url) {
    if (![...$("method").options].some((o) => o.value === method.toUpperCase())) $("method").append(new Option(method.toUpperCase()));
    $("method").value = method.toUpperCase();
    $("url").value = url;
  } else {
    $("method").value = "GET";
    $("url").value = method;
  }
  $("headers").value = headers || "";
}

// ---------------------------------------------------------------------------------------------
// Examples and the live view

function pickExample(name) {
  const example = state.examples.find((e) => e.name === name);
  if (!example) return;
  $("example").value = name;
  $("editor").value = example.text;
  applyRequest(example.request || "GET http://www.example.com/", (example.headers || []).join("\n"), example.kind, example.grpc);
  evaluate();
  saveFragment();
}

async function loadExamples() {
  const response = await fetch("examples.json");
  if (!response.ok) throw new Error(`examples.json: ${response.status}`);
  state.examples = await response.json();
  $("example").replaceChildren(...state.examples.map((e) => new Option(e.title, e.name)));
}

function describeLive(live) {
  const parts = [`live: ${live.source}, resolved ${live.resolvedAt ?? "not yet"}`];
  for (const g of live.gateways) {
    const pushes = g.pushes.map((p) => `${p.target} at ${p.at} (${p.durationMs.toFixed(1)} ms)`).join(", ");
    parts.push(`${g.gateway}: revision ${g.revision}, ${g.routes} routes, pushed ${pushes || "never"}`);
    if (g.pending) parts.push(`${g.gateway}: newer revision ${g.pending.revision} not running: ${g.pending.reason}`);
  }
  return parts.join(" · ");
}

async function refreshLive(first) {
  let live;
  try {
    const response = await fetch("live.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`live.json: ${response.status}`);
    live = await response.json();
  } catch (e) {
    $("live").hidden = false;
    $("live").textContent = `cannot read the live configuration: ${e.message}`;
    return;
  }
  const changed = !state.live || JSON.stringify(state.live) !== JSON.stringify(live);
  state.live = live;
  $("live").hidden = false;
  $("live").textContent = describeLive(live);
  if (first || changed) {
    $("editor").value = live.manifests;
    evaluate();
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  state.api = await ready;
  $("mode").textContent = MODE === "live" ? "live" : `playground · module ${state.api.version}`;
  $("mode").classList.toggle("live", MODE === "live");
  $("kind").addEventListener("change", showKind);
  for (const id of ["kind", "method", "url", "grpc", "headers", "gateway"]) {
    $(id).addEventListener("input", schedule);
    $(id).addEventListener("change", schedule); // also a field emptied without typing
  }
  $("request").addEventListener("submit", (e) => { e.preventDefault(); evaluate(); });
  if (MODE === "live") {
    $("editor").readOnly = true;
    $("example-picker").hidden = true;
    $("share").hidden = true;
    await refreshLive(true);
    setInterval(() => refreshLive(false), LIVE_REFRESH_MS);
  } else {
    $("editor").addEventListener("input", schedule);
    $("example").addEventListener("change", () => pickExample($("example").value));
    $("share").addEventListener("click", async () => {
      const link = location.href.split("#")[0] + "#" + (await encodeState());
      history.replaceState(null, "", link);
      try { await navigator.clipboard.writeText(link); $("share").textContent = "link copied"; } catch { $("share").textContent = "link in the address bar"; }
      setTimeout(() => { $("share").textContent = "copy link"; }, 1500);
    });
    await loadExamples();
    const saved = location.hash.length > 1 ? await decodeState(location.hash.slice(1)).catch(() => null) : null;
    if (saved) {
      $("editor").value = saved.m;
      applyRequest(saved.r, saved.h, saved.k, saved.s);
      if (saved.g) renderGatewayPicker([saved.g], saved.g);
      $("example").value = "";
      evaluate();
    } else {
      pickExample(state.examples[0]?.name);
    }
  }
  document.body.dataset.ready = "true";
}

main().catch((e) => {
  $("mode").textContent = "failed";
  $("decision").className = "decision error";
  $("decision").textContent = `The page could not start: ${e.message || e}`;
  document.body.dataset.ready = "failed";
});
