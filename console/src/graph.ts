// A graph document seen as boxes and links: the ports of each node (from the catalog), its links,
// the edits the canvas makes (each returns a new document), and the automatic layout.
import dagre from "@dagrejs/dagre";
import type { GraphDocument, Json, JsonObject, NodeDocument, NodeTypeInfo, PortSchema } from "./api";
import { canConnect, parseType, typeName, type Connection, type PortType } from "./porttypes";

export const INPUTS_NODE = "__inputs__";
export const OUTPUTS_NODE = "__outputs__";

export interface Port {
  name: string;
  type: PortType;
  schema: PortSchema;
  required: boolean;
}

export type Source = { node: string; output: string } | { input: string };

export function asSource(value: Json | undefined): Source | null {
  if (!value || typeof value !== "object" || Array.isArray(value)) return null;
  const keys = Object.keys(value).sort().join(",");
  if (keys === "node,output" && typeof value.node === "string" && typeof value.output === "string") {
    return { node: value.node, output: value.output };
  }
  if (keys === "input" && typeof value.input === "string") return { input: value.input };
  return null;
}

/** A literal as the node document holds it (an object shaped like a link is wrapped). */
export function literalValue(value: Json | undefined): Json | undefined {
  if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).join() === "literal") {
    return value.literal;
  }
  return value;
}

export type Catalog = Map<string, NodeTypeInfo>;

function ports(schema: NodeTypeInfo["inputs"]): Port[] {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {}).map(([name, port]) => ({
    name, schema: port, required: required.has(name), type: parseType(port["x-nodeloom-type"]),
  }));
}

/** The input ports of a node: its type's ports, then variadic ones the node sets. */
export function inputPorts(node: NodeDocument, catalog: Catalog): Port[] {
  const info = catalog.get(node.type);
  if (!info) return Object.keys(node.inputs).map((name) => ({ name, schema: { "x-nodeloom-type": "Any" }, required: false, type: { tag: "any" } }));
  const declared = ports(info.inputs);
  const extra = info.inputs.additionalProperties;
  if (extra && typeof extra === "object") {
    const known = new Set(declared.map((port) => port.name));
    for (const name of Object.keys(node.inputs)) {
      if (!known.has(name)) declared.push({ name, schema: extra, required: false, type: parseType(extra["x-nodeloom-type"]) });
    }
  }
  return declared;
}

export function outputPorts(node: NodeDocument, catalog: Catalog): Port[] {
  const info = catalog.get(node.type);
  return info ? ports(info.outputs) : [];
}

export function graphInputPorts(doc: GraphDocument): Port[] {
  return Object.entries(doc.inputs ?? {}).map(([name, input]) => ({
    name, required: !("default" in input), type: parseType(input.type),
    schema: { ...(input as JsonObject), "x-nodeloom-type": input.type } as PortSchema,
  }));
}

export interface LinkInfo {
  id: string;
  source: string;
  sourcePort: string;
  target: string;
  targetPort: string;
}

/** Every link of the document: node to node, graph input to node, node to graph output. */
export function links(doc: GraphDocument): LinkInfo[] {
  const found: LinkInfo[] = [];
  for (const [target, node] of Object.entries(doc.nodes)) {
    for (const [port, value] of Object.entries(node.inputs ?? {})) {
      const source = asSource(value);
      if (!source) continue;
      if ("input" in source) {
        found.push({ id: `${INPUTS_NODE}.${source.input}->${target}.${port}`, source: INPUTS_NODE, sourcePort: source.input, target, targetPort: port });
      } else {
        found.push({ id: `${source.node}.${source.output}->${target}.${port}`, source: source.node, sourcePort: source.output, target, targetPort: port });
      }
    }
  }
  for (const [name, link] of Object.entries(doc.outputs ?? {})) {
    found.push({ id: `${link.node}.${link.output}->${OUTPUTS_NODE}.${name}`, source: link.node, sourcePort: link.output, target: OUTPUTS_NODE, targetPort: name });
  }
  return found;
}

export function sourceType(doc: GraphDocument, catalog: Catalog, node: string, port: string): PortType | null {
  if (node === INPUTS_NODE) {
    const input = doc.inputs?.[port];
    return input ? parseType(input.type) : null;
  }
  const instance = doc.nodes[node];
  return instance ? outputPorts(instance, catalog).find((p) => p.name === port)?.type ?? null : null;
}

/** Whether output `sourcePort` of `source` may feed input `targetPort` of `target`, and if not why. */
export function checkLink(doc: GraphDocument, catalog: Catalog, source: string, sourcePort: string, target: string, targetPort: string): Connection {
  if (source === target) return { ok: false, reason: "a node cannot feed itself" };
  const src = sourceType(doc, catalog, source, sourcePort);
  if (!src) return { ok: false, reason: `${source} has no output ${sourcePort}` };
  if (target === OUTPUTS_NODE) return { ok: true };
  const node = doc.nodes[target];
  const dst = node && inputPorts(node, catalog).find((p) => p.name === targetPort);
  if (!dst) return { ok: false, reason: `${target} has no input ${targetPort}` };
  const answer = canConnect(src, dst.type);
  if (!answer.ok) return answer;
  if (source !== INPUTS_NODE && reaches(doc, target, source)) return { ok: false, reason: `linking ${source} to ${target} would make a cycle` };
  return answer;
}

function reaches(doc: GraphDocument, from: string, to: string): boolean {
  const seen = new Set<string>();
  const stack = [from];
  while (stack.length) {
    const current = stack.pop()!;
    if (current === to) return true;
    if (seen.has(current)) continue;
    seen.add(current);
    for (const link of links(doc)) if (link.source === current && link.target !== OUTPUTS_NODE) stack.push(link.target);
  }
  return false;
}

// -- edits: each returns a new document ------------------------------------------------------

function clone(doc: GraphDocument): GraphDocument {
  return structuredClone(doc);
}

export function setInput(doc: GraphDocument, node: string, port: string, value: Json | undefined): GraphDocument {
  const next = clone(doc);
  if (node === OUTPUTS_NODE) {
    const source = asSource(value ?? null);
    next.outputs = { ...(next.outputs ?? {}) };
    if (source && "node" in source) next.outputs[port] = source;
    else delete next.outputs[port];
    return next;
  }
  const inputs = next.nodes[node].inputs;
  if (value === undefined) delete inputs[port];
  else inputs[port] = asSource(value) ? value : wrapLiteral(value);
  return next;
}

function wrapLiteral(value: Json): Json {
  return value && typeof value === "object" && !Array.isArray(value) && asSource(value) ? { literal: value } : value;
}

export function addNode(doc: GraphDocument, info: NodeTypeInfo, position: { x: number; y: number }): [GraphDocument, string] {
  const next = clone(doc);
  const stem = info.type.split(".").pop()!.replace(/[^A-Za-z0-9_]/g, "_");
  let id = stem;
  for (let index = 1; id in next.nodes; index++) id = `${stem}_${index}`;
  next.nodes[id] = { type: info.type, inputs: {} };
  return [withPositions(next, { ...positions(next), [id]: position }), id];
}

export function deleteNode(doc: GraphDocument, id: string): GraphDocument {
  const next = clone(doc);
  delete next.nodes[id];
  for (const node of Object.values(next.nodes)) {
    for (const [port, value] of Object.entries(node.inputs)) {
      const source = asSource(value);
      if (source && "node" in source && source.node === id) delete node.inputs[port];
    }
  }
  for (const [name, link] of Object.entries(next.outputs ?? {})) if (link.node === id) delete next.outputs![name];
  const kept = positions(next);
  delete kept[id];
  return withPositions(next, kept);
}

export function deleteLink(doc: GraphDocument, link: LinkInfo): GraphDocument {
  return setInput(doc, link.target, link.targetPort, undefined);
}

/** Make a node's input a graph input (default: its current literal), linked to it. */
export function promoteToInput(doc: GraphDocument, node: string, port: Port): GraphDocument {
  const next = clone(doc);
  let name = port.name;
  for (let index = 1; next.inputs && name in next.inputs; index++) name = `${port.name}_${index}`;
  const current = literalValue(next.nodes[node].inputs[port.name]);
  const input: JsonObject = { type: typeName(port.type) };
  const fallback = current ?? port.schema.default;
  if (fallback !== undefined) input.default = fallback;
  if (port.schema.description) input.description = port.schema.description;
  next.inputs = { ...(next.inputs ?? {}), [name]: input as never };
  next.nodes[node].inputs[port.name] = { input: name };
  return next;
}

// -- positions (kept in the document's metadata, so a saved graph opens as it was left) ------

export type Positions = Record<string, { x: number; y: number }>;

export function positions(doc: GraphDocument): Positions {
  const console = doc.metadata?.console;
  const saved = console && typeof console === "object" && !Array.isArray(console) ? console.positions : undefined;
  return saved && typeof saved === "object" && !Array.isArray(saved) ? structuredClone(saved) as unknown as Positions : {};
}

export function withPositions(doc: GraphDocument, placed: Positions): GraphDocument {
  const metadata = { ...(doc.metadata ?? {}) };
  const console = metadata.console && typeof metadata.console === "object" && !Array.isArray(metadata.console) ? metadata.console : {};
  metadata.console = { ...console, positions: placed as unknown as Json };
  return { ...doc, metadata };
}

export const NODE_WIDTH = 250;

export function nodeHeight(ins: number, outs: number): number {
  return 64 + 22 * Math.max(ins, outs);
}

/** Lay the graph out left to right (dagre), for a graph opened without saved positions. */
export function autoLayout(doc: GraphDocument, catalog: Catalog): Positions {
  const layout = new dagre.graphlib.Graph();
  layout.setGraph({ rankdir: "LR", nodesep: 30, ranksep: 70, marginx: 20, marginy: 20 });
  layout.setDefaultEdgeLabel(() => ({}));
  const sizes: Record<string, [number, number]> = {};
  if (Object.keys(doc.inputs ?? {}).length) sizes[INPUTS_NODE] = [NODE_WIDTH, nodeHeight(0, Object.keys(doc.inputs ?? {}).length)];
  if (Object.keys(doc.outputs ?? {}).length) sizes[OUTPUTS_NODE] = [NODE_WIDTH, nodeHeight(Object.keys(doc.outputs ?? {}).length, 0)];
  for (const [id, node] of Object.entries(doc.nodes)) {
    sizes[id] = [NODE_WIDTH, nodeHeight(inputPorts(node, catalog).length, outputPorts(node, catalog).length)];
  }
  for (const [id, [width, height]] of Object.entries(sizes)) layout.setNode(id, { width, height });
  for (const link of links(doc)) if (sizes[link.source] && sizes[link.target]) layout.setEdge(link.source, link.target);
  dagre.layout(layout);
  const placed: Positions = {};
  for (const id of Object.keys(sizes)) {
    const box = layout.node(id);
    placed[id] = { x: Math.round(box.x - box.width / 2), y: Math.round(box.y - box.height / 2) };
  }
  return placed;
}
