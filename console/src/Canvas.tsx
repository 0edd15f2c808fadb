// The canvas: nodes as boxes with typed sockets, links, pan/zoom/select (React Flow).
import {
  Background, Controls, Handle, MiniMap, Position, ReactFlow, applyNodeChanges,
  type Connection as FlowConnection, type Edge, type FinalConnectionState, type Node, type NodeChange, type NodeProps,
} from "@xyflow/react";
import { memo, useCallback, useEffect, useMemo, useState } from "react";
import type { GraphDocument, Issue } from "./api";
import {
  INPUTS_NODE, NODE_WIDTH, OUTPUTS_NODE, autoLayout, checkLink, graphInputPorts, inputPorts, links, outputPorts,
  positions, asSource, literalValue, deleteNode, type Catalog, type Positions,
} from "./graph";
import { typeName } from "./porttypes";

export interface NodeStatus {
  state: string;
  done?: number;
  total?: number;
  message?: string;
  error?: string;
}

interface Row { name: string; type: string; linked: boolean; value?: string; problem?: string }

type BoxData = {
  title: string;
  subtitle: string;
  inputs: Row[];
  outputs: Row[];
  status?: NodeStatus;
  problems: string[];
};

type BoxNode = Node<BoxData, "box">;

function brief(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > 28 ? `${text.slice(0, 27)}…` : text;
}

/** The end of a streamed text (an LLM's tokens so far), on one line. */
function tail(text: string): string {
  const line = text.replace(/\s+/g, " ");
  return line.length > 40 ? `…${line.slice(-39)}` : line;
}

const Box = memo(function Box({ id, data, selected }: NodeProps<BoxNode>) {
  const state = data.status?.state;
  const progress = data.status && data.status.total ? Math.round(100 * (data.status.done ?? 0) / data.status.total) : null;
  return (
    <div className={`box${selected ? " selected" : ""}${state ? ` state-${state}` : ""}${data.problems.length || data.inputs.some((row) => row.problem) ? " invalid" : ""}`}
      data-node={id} data-state={state ?? ""} style={{ width: NODE_WIDTH }}>
      <div className="box-title">
        <strong>{data.title}</strong>
        <span className="box-type">{data.subtitle}</span>
        {state && <span className="badge" aria-label={`state ${state}`}>{state}</span>}
      </div>
      {state === "running" && (
        <div className="progress" role="progressbar" aria-label={`${data.title} progress`}
          aria-valuenow={progress ?? undefined} aria-valuemin={0} aria-valuemax={100}>
          <div style={{ width: `${progress ?? 30}%` }} className={progress === null ? "indeterminate" : ""} />
          {data.status?.message && <span className="stream" aria-live="polite">{tail(data.status.message)}</span>}
        </div>
      )}
      <div className="box-ports">
        <div className="box-inputs">
          {data.inputs.map((row) => (
            <div className={`port in${row.problem ? " port-invalid" : ""}`} key={row.name} title={row.problem ?? `${row.name}: ${row.type}`}>
              <Handle type="target" position={Position.Left} id={row.name} className={`socket t-${row.type.replace(/\W.*/, "")}`}
                aria-label={`input ${row.name} of ${id} (${row.type})`} />
              <span className="port-name">{row.name}</span>
              {row.value !== undefined && !row.linked && <span className="port-value">= {row.value}</span>}
              <span className="port-type">{row.type}</span>
            </div>
          ))}
        </div>
        <div className="box-outputs">
          {data.outputs.map((row) => (
            <div className="port out" key={row.name} title={`${row.name}: ${row.type}`}>
              <span className="port-type">{row.type}</span>
              <span className="port-name">{row.name}</span>
              <Handle type="source" position={Position.Right} id={row.name} className={`socket t-${row.type.replace(/\W.*/, "")}`}
                aria-label={`output ${row.name} of ${id} (${row.type})`} />
            </div>
          ))}
        </div>
      </div>
      {data.status?.error && <div className="box-error" role="status">{data.status.error}</div>}
      {data.problems.map((problem) => <div className="box-error" key={problem}>{problem}</div>)}
    </div>
  );
});

const nodeTypes = { box: Box };

interface CanvasProps {
  doc: GraphDocument;
  catalog: Catalog;
  editable: boolean;
  statuses?: Record<string, NodeStatus>;
  issues?: Issue[];
  selected: string | null;
  onSelect: (id: string | null) => void;
  onChange?: (doc: GraphDocument) => void;
  onMove?: (placed: Positions) => void;
  onRefused?: (reason: string) => void;
}

export function boxes(doc: GraphDocument, catalog: Catalog, statuses: Record<string, NodeStatus>, issues: Issue[], placed: Positions, selected: string | null): BoxNode[] {
  const problemsOf = (node: string, port: string | null) => issues.filter((issue) => issue.node === node && issue.port === port)
    .map((issue) => issue.message);
  const result: BoxNode[] = [];
  const place = (id: string) => placed[id] ?? { x: 0, y: 0 };
  const graphInputs = graphInputPorts(doc);
  if (graphInputs.length) {
    result.push({
      id: INPUTS_NODE, type: "box", position: place(INPUTS_NODE), selected: selected === INPUTS_NODE, deletable: false,
      data: { title: "Graph inputs", subtitle: "set per run", inputs: [], problems: problemsOf(INPUTS_NODE, null),
        outputs: graphInputs.map((port) => ({ name: port.name, type: typeName(port.type), linked: false })) },
    });
  }
  for (const [id, node] of Object.entries(doc.nodes)) {
    const rows = inputPorts(node, catalog).map((port): Row => {
      const raw = node.inputs[port.name];
      const source = asSource(raw);
      const value = source ? undefined : literalValue(raw);
      const problem = problemsOf(id, port.name).join("; ");
      return { name: port.name, type: typeName(port.type), linked: source !== null,
        value: value === undefined ? undefined : brief(value), problem: problem || undefined };
    });
    const known = catalog.has(node.type);
    result.push({
      id, type: "box", position: place(id), selected: selected === id,
      data: { title: node.label ? String(node.label) : id, subtitle: node.label ? `${id} · ${node.type}` : node.type,
        inputs: rows, outputs: outputPorts(node, catalog).map((port) => ({ name: port.name, type: typeName(port.type), linked: false })),
        status: statuses[id], problems: [...(known ? [] : [`unknown node type ${node.type}`]), ...problemsOf(id, null)] },
    });
  }
  const outputs = Object.keys(doc.outputs ?? {});
  if (outputs.length) {
    result.push({
      id: OUTPUTS_NODE, type: "box", position: place(OUTPUTS_NODE), selected: selected === OUTPUTS_NODE, deletable: false,
      data: { title: "Graph outputs", subtitle: "what a run returns", outputs: [], problems: problemsOf(OUTPUTS_NODE, null),
        inputs: outputs.map((name) => ({ name, type: "Any", linked: true })) },
    });
  }
  return result;
}

const NO_STATUSES: Record<string, NodeStatus> = {};
const NO_ISSUES: Issue[] = [];

export function Canvas({ doc, catalog, editable, statuses = NO_STATUSES, issues = NO_ISSUES, selected, onSelect, onChange, onMove, onRefused }: CanvasProps) {
  const placed = useMemo(() => {
    const saved = positions(doc);
    const missing = [...Object.keys(doc.nodes), ...(doc.inputs && Object.keys(doc.inputs).length ? [INPUTS_NODE] : []),
      ...(doc.outputs && Object.keys(doc.outputs).length ? [OUTPUTS_NODE] : [])].some((id) => !saved[id]);
    return missing ? { ...autoLayout(doc, catalog), ...saved } : saved;
  }, [doc, catalog]);
  const [nodes, setNodes] = useState<BoxNode[]>(() => boxes(doc, catalog, statuses, issues, placed, selected));
  useEffect(() => { setNodes(boxes(doc, catalog, statuses, issues, placed, selected)); }, [doc, catalog, statuses, issues, placed, selected]);
  const edges: Edge[] = useMemo(() => links(doc).map((link) => ({
    id: link.id, source: link.source, sourceHandle: link.sourcePort, target: link.target, targetHandle: link.targetPort,
    animated: statuses[link.source]?.state === "running", ariaLabel: `link ${link.source}.${link.sourcePort} to ${link.target}.${link.targetPort}`,
    deletable: editable,
  })), [doc, statuses, editable]);

  const onNodesChange = useCallback((changes: NodeChange<BoxNode>[]) => {
    setNodes((current) => applyNodeChanges(changes, current));
    for (const change of changes) {
      if (change.type === "select" && change.selected) onSelect(change.id);
    }
  }, [onSelect]);

  const refusal = useCallback((source: string | null | undefined, sourcePort: string | null | undefined,
    target: string | null | undefined, targetPort: string | null | undefined) => {
    if (!source || !sourcePort || !target || !targetPort) return null;
    const answer = checkLink(doc, catalog, source, sourcePort, target, targetPort);
    return answer.ok ? null : answer.reason ?? "these ports cannot be linked";
  }, [doc, catalog]);

  const isValidConnection = useCallback((connection: FlowConnection | Edge) =>
    refusal(connection.source, connection.sourceHandle, connection.target, connection.targetHandle) === null, [refusal]);

  const onConnect = useCallback((connection: FlowConnection) => {
    if (!onChange || !connection.sourceHandle || !connection.targetHandle) return;
    const reason = refusal(connection.source, connection.sourceHandle, connection.target, connection.targetHandle);
    if (reason) { onRefused?.(reason); return; }
    const value: { [key: string]: string } = connection.source === INPUTS_NODE ? { input: connection.sourceHandle }
      : { node: connection.source, output: connection.sourceHandle };
    if (connection.target === OUTPUTS_NODE) {
      onChange({ ...doc, outputs: { ...(doc.outputs ?? {}), [connection.targetHandle]: value as { node: string; output: string } } });
      return;
    }
    const next = structuredClone(doc);
    next.nodes[connection.target].inputs[connection.targetHandle] = value;
    onChange(next);
  }, [doc, onChange, onRefused, refusal]);

  const onConnectEnd = useCallback((_event: MouseEvent | TouchEvent, state: FinalConnectionState) => {
    if (state.isValid || !state.toHandle || !state.fromHandle) return;
    const from = state.fromHandle;
    const to = state.toHandle;
    const [source, target] = from.type === "source" ? [from, to] : [to, from];
    const reason = refusal(source.nodeId, source.id, target.nodeId, target.id);
    if (reason) onRefused?.(reason);
  }, [refusal, onRefused]);

  return (
    <div className="canvas" aria-label="graph canvas">
      <ReactFlow
        nodes={nodes} edges={edges} nodeTypes={nodeTypes}
        onNodesChange={onNodesChange}
        onNodeDragStop={(_event, _node, moved) => {
          if (!onMove) return;
          const next = { ...placed };
          for (const node of nodes) next[node.id] = node.position;
          for (const node of moved) next[node.id] = node.position;
          onMove(next);
        }}
        onPaneClick={() => onSelect(null)}
        onEdgesDelete={(deleted) => {
          if (!onChange) return;
          let next = doc;
          for (const edge of deleted) {
            if (edge.target === OUTPUTS_NODE) {
              next = { ...next, outputs: Object.fromEntries(Object.entries(next.outputs ?? {}).filter(([name]) => name !== edge.targetHandle)) };
            } else if (edge.targetHandle) {
              next = structuredClone(next);
              delete next.nodes[edge.target].inputs[edge.targetHandle];
            }
          }
          onChange(next);
        }}
        onNodesDelete={(deleted) => {
          if (onChange) onChange(deleted.reduce((next, node) => deleteNode(next, node.id), doc));
        }}
        deleteKeyCode={editable ? ["Delete", "Backspace"] : null}
        nodesConnectable={editable}
        nodesDraggable
        isValidConnection={isValidConnection}
        onConnect={onConnect}
        onConnectEnd={onConnectEnd}
        fitView
        minZoom={0.1}
        proOptions={{ hideAttribution: true }}
      >
        <Background />
        <Controls aria-label="zoom controls" showInteractive={false} />
        <MiniMap pannable zoomable ariaLabel="overview of the graph" />
      </ReactFlow>
    </div>
  );
}
