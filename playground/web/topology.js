// The topology diagram: GatewayClass → Gateway → listeners → routes → rules → backends, as SVG.
//
// Input: `resolve(...).topology` ({nodes, edges}, built by the playground crate's topology.rs).
// Nodes sit in one column per kind; within a column they are ordered by the mean position of the
// nodes that point at them, which keeps most edges from crossing. Rejected objects and unresolved
// references are drawn red with their reason (full text in the tooltip).

const SVG = "http://www.w3.org/2000/svg";
// The node kinds of each column (topology.rs COLUMNS): routes of both kinds share one.
const COLUMNS = [["GatewayClass"], ["Gateway"], ["Listener"], ["HTTPRoute", "GRPCRoute"], ["Rule"], ["Backend"]];
const TITLES = ["GatewayClass", "Gateway", "Listeners", "Routes", "Rules", "Backends"];
const NODE_WIDTH = 184;
const COLUMN_GAP = 104;
const LINE = 14;
const PAD = 8;
const GAP = 14;
const TOP = 34;
const CHARS = 26;

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function clip(text, n = CHARS) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

/** Keeps the end: a gRPC match reads `pkg.v1.Service/Method`, whose end tells rules apart. */
function clipStart(text, n = CHARS) {
  return text.length > n ? "…" + text.slice(text.length - n + 1) : text;
}

/** The lines a node shows: label, details, then (in red) its first problems. */
function linesOf(node) {
  const lines = [{ text: clip(node.label), cls: "label" }];
  const grpcRule = node.id.startsWith("Rule:GRPCRoute:");
  for (const d of node.detail) lines.push({ text: grpcRule && !d.startsWith("⇒") ? clipStart(d) : clip(d), cls: "detail" });
  for (const p of node.problems.slice(0, 2)) {
    // A problem reads "Type: Reason — message": show the reason part, wrapped on two lines.
    const short = p.split(" — ")[0];
    lines.push({ text: clip(short), cls: "problem" });
    if (short.length > CHARS) lines.push({ text: clip(short.slice(CHARS - 1)), cls: "problem" });
  }
  if (node.problems.length > 2) lines.push({ text: `+${node.problems.length - 2} more`, cls: "problem" });
  return lines;
}

/** Orders each column by the mean row of the nodes pointing at its nodes (left to right). */
function layout(topology) {
  const byId = new Map(topology.nodes.map((n) => [n.id, n]));
  const incoming = new Map();
  for (const e of topology.edges) {
    if (!incoming.has(e.to)) incoming.set(e.to, []);
    incoming.get(e.to).push(e.from);
  }
  const row = new Map();
  const columns = COLUMNS.map(() => []);
  topology.nodes.forEach((n, i) => {
    const c = COLUMNS.findIndex((kinds) => kinds.includes(n.kind));
    if (c >= 0) columns[c].push({ node: n, order: i });
  });
  for (const column of columns) {
    for (const entry of column) {
      const rows = (incoming.get(entry.node.id) || []).filter((id) => row.has(id)).map((id) => row.get(id));
      entry.key = rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Number.MAX_SAFE_INTEGER;
    }
    column.sort((a, b) => a.key - b.key || a.order - b.order);
    column.forEach((entry, i) => row.set(entry.node.id, i));
  }
  const boxes = new Map();
  let height = TOP;
  columns.forEach((column, c) => {
    let y = TOP;
    for (const { node } of column) {
      const lines = linesOf(node);
      const h = PAD * 2 + lines.length * LINE;
      boxes.set(node.id, { x: c * (NODE_WIDTH + COLUMN_GAP), y, w: NODE_WIDTH, h, lines, node });
      y += h + GAP;
    }
    height = Math.max(height, y);
  });
  return { boxes, byId, height, width: COLUMNS.length * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP };
}

/**
 * Draws `topology` into `container` (replacing what is there). `hits` is a Set of node ids to
 * highlight (the decision's path).
 */
export function draw(container, topology, hits = new Set()) {
  const { boxes, height, width } = layout(topology);
  const svg = el("svg", {
    viewBox: `-4 0 ${width + 8} ${height + 4}`,
    width: "100%",
    role: "img",
    "aria-label": "How the objects relate: classes, Gateways, listeners, routes, rules and backends",
  });
  COLUMNS.forEach((_, c) => {
    svg.append(el("text", { x: c * (NODE_WIDTH + COLUMN_GAP) + 2, y: 16, class: "column" }, TITLES[c]));
  });
  const edges = el("g", { class: "edges" });
  for (const e of topology.edges) {
    const a = boxes.get(e.from);
    const b = boxes.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + a.w;
    const y1 = a.y + a.h / 2;
    const x2 = b.x;
    const y2 = b.y + b.h / 2;
    const mid = (x1 + x2) / 2;
    const hit = hits.has(e.from) && hits.has(e.to);
    const path = el("path", {
      d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
      class: `edge${e.ok ? "" : " bad"}${hit ? " hit" : ""}`,
      "data-from": e.from,
      "data-to": e.to,
    });
    if (e.problem) path.append(el("title", {}, e.problem));
    edges.append(path);
    if (e.label) {
      // Just before the target, where labels of edges fanning out of one node do not overlap.
      const t = el("text", { x: x2 - 6, y: y2 - 4, class: `edge-label${e.ok ? "" : " bad"}` }, clip(e.label, 17));
      t.append(el("title", {}, e.problem || e.label));
      edges.append(t);
    }
  }
  svg.append(edges);
  for (const box of boxes.values()) {
    const { node } = box;
    const g = el("g", {
      class: `node ${node.kind}${node.ok ? "" : " bad"}${hits.has(node.id) ? " hit" : ""}`,
      "data-id": node.id,
      "data-kind": node.kind,
      transform: `translate(${box.x},${box.y})`,
    });
    g.append(el("title", {}, [node.id, ...node.detail, ...node.problems].join("\n")));
    g.append(el("rect", { width: box.w, height: box.h, rx: 6 }));
    box.lines.forEach((line, i) => {
      g.append(el("text", { x: PAD, y: PAD + LINE * (i + 1) - 3, class: line.cls }, line.text));
    });
    svg.append(g);
  }
  container.replaceChildren(svg);
  return svg;
}
