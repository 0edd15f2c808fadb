// The node inspector: the type's description, its ports with types and constraints, and its values.
import type { GraphDocument, Issue, Json, NodeTypeInfo, PortSchema } from "./api";
import {
  INPUTS_NODE, OUTPUTS_NODE, asSource, checkLink, graphInputPorts, inputPorts, links, literalValue, outputPorts,
  promoteToInput, setInput, type Catalog, type Port,
} from "./graph";
import { parseType, typeName } from "./porttypes";
import { ValueWidget } from "./widgets";

function constraints(schema: PortSchema): string[] {
  const found: string[] = [];
  if (schema.minimum !== undefined) found.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) found.push(`≤ ${schema.maximum}`);
  if (schema.enum) found.push(`one of ${schema.enum.map((value) => JSON.stringify(value)).join(", ")}`);
  if (schema.pattern) found.push(`matches ${schema.pattern}`);
  return found;
}

function sourceKey(value: Json | undefined): string {
  const source = asSource(value);
  if (!source) return "";
  return "input" in source ? `${INPUTS_NODE}.${source.input}` : `${source.node}.${source.output}`;
}

interface InspectorProps {
  doc: GraphDocument;
  catalog: Catalog;
  nodeId: string;
  editable: boolean;
  issues: Issue[];
  onChange: (doc: GraphDocument) => void;
  onRefused: (reason: string) => void;
}

export function TypeDetails({ info }: { info: NodeTypeInfo }) {
  const required = new Set(info.inputs.required);
  return (
    <div className="type-details">
      <p>{info.description}</p>
      <p className="muted">{info.category} · v{info.version} · {info.resources}{info.deterministic ? " · deterministic" : ""}</p>
      <h4>Inputs</h4>
      <ul className="port-list">
        {Object.entries(info.inputs.properties).map(([name, schema]) => (
          <li key={name}><code>{name}</code> <span className="port-type">{typeName(portTypeOf(schema))}</span>
            {required.has(name) ? " (required)" : schema.default !== undefined ? ` = ${JSON.stringify(schema.default)}` : ""}
            {constraints(schema).length > 0 && <span className="muted"> {constraints(schema).join(", ")}</span>}
            {schema.description && <div className="muted">{schema.description}</div>}</li>
        ))}
      </ul>
      <h4>Outputs</h4>
      <ul className="port-list">
        {Object.entries(info.outputs.properties).map(([name, schema]) => (
          <li key={name}><code>{name}</code> <span className="port-type">{typeName(portTypeOf(schema))}</span>
            {schema.description && <div className="muted">{schema.description}</div>}</li>
        ))}
      </ul>
    </div>
  );
}

function portTypeOf(schema: PortSchema) { return parseType(schema["x-nodeloom-type"]); }

export function Inspector({ doc, catalog, nodeId, editable, issues, onChange, onRefused }: InspectorProps) {
  if (nodeId === INPUTS_NODE) {
    return (
      <section className="inspector" aria-label="inspector">
        <h3>Graph inputs</h3>
        <ul className="port-list">
          {graphInputPorts(doc).map((port) => (
            <li key={port.name}><code>{port.name}</code> <span className="port-type">{typeName(port.type)}</span>
              {port.schema.default !== undefined && <> = {JSON.stringify(port.schema.default)}</>}
              {constraints(port.schema).length > 0 && <span className="muted"> {constraints(port.schema).join(", ")}</span>}
              {port.schema.description && <div className="muted">{String(port.schema.description)}</div>}</li>
          ))}
        </ul>
      </section>
    );
  }
  if (nodeId === OUTPUTS_NODE) {
    return (
      <section className="inspector" aria-label="inspector">
        <h3>Graph outputs</h3>
        <ul className="port-list">
          {Object.entries(doc.outputs ?? {}).map(([name, link]) => <li key={name}><code>{name}</code> ← {link.node}.{link.output}</li>)}
        </ul>
      </section>
    );
  }
  const node = doc.nodes[nodeId];
  if (!node) return null;
  const info = catalog.get(node.type);
  const sources: { key: string; label: string; node: string; port: string }[] = [
    ...graphInputPorts(doc).map((port) => ({ key: `${INPUTS_NODE}.${port.name}`, label: `graph input ${port.name} (${typeName(port.type)})`, node: INPUTS_NODE, port: port.name })),
    ...Object.entries(doc.nodes).filter(([id]) => id !== nodeId).flatMap(([id, other]) => outputPorts(other, catalog)
      .map((port) => ({ key: `${id}.${port.name}`, label: `${id}.${port.name} (${typeName(port.type)})`, node: id, port: port.name }))),
  ];
  const linkTo = (port: Port, key: string) => {
    if (key === "") { onChange(setInput(doc, nodeId, port.name, undefined)); return; }
    const source = sources.find((candidate) => candidate.key === key)!;
    const answer = checkLink(doc, catalog, source.node, source.port, nodeId, port.name);
    if (!answer.ok) { onRefused(answer.reason ?? "these ports cannot be linked"); return; }
    onChange(setInput(doc, nodeId, port.name, source.node === INPUTS_NODE ? { input: source.port } : { node: source.node, output: source.port }));
  };
  const feeds = links(doc).filter((link) => link.source === nodeId);
  return (
    <section className="inspector" aria-label="inspector">
      <h3>{node.label ?? nodeId}</h3>
      <p className="muted"><code>{nodeId}</code> · <code>{node.type}</code></p>
      {info ? <p>{info.description}</p> : <p className="problem">unknown node type {node.type}</p>}
      {issues.filter((issue) => issue.node === nodeId && !issue.port).map((issue) => (
        <p className="problem" key={issue.message}>{issue.message}{issue.hint ? ` (${issue.hint})` : ""}</p>))}
      <h4>Inputs</h4>
      {inputPorts(node, catalog).map((port) => {
        const raw = node.inputs[port.name];
        const linked = asSource(raw) !== null;
        const id = `field-${nodeId}-${port.name}`;
        const portIssues = issues.filter((issue) => issue.node === nodeId && issue.port === port.name);
        return (
          <div className={`field${portIssues.length ? " field-invalid" : ""}`} key={port.name}>
            <label htmlFor={id}><code>{port.name}</code> <span className="port-type">{typeName(port.type)}</span>
              {port.required ? " required" : ""}
              {constraints(port.schema).length > 0 && <span className="muted"> {constraints(port.schema).join(", ")}</span>}</label>
            {port.schema.description && <div className="muted">{port.schema.description}</div>}
            {editable && (
              <select aria-label={`link ${port.name} from`} value={sourceKey(raw)} onChange={(event) => linkTo(port, event.target.value)}>
                <option value="">{linked ? "unlink (use a value)" : "value (not linked)"}</option>
                {sources.map((source) => <option key={source.key} value={source.key}>{source.label}</option>)}
              </select>
            )}
            {linked ? <div className="muted" id={id}>linked from {sourceKey(raw).replace(`${INPUTS_NODE}.`, "graph input ")}</div> : (
              <ValueWidget id={id} label={`${port.name} value`} schema={port.schema} type={port.type} readOnly={!editable}
                value={literalValue(raw)} onCommit={(value) => onChange(setInput(doc, nodeId, port.name, value))} />
            )}
            {editable && !linked && port.type.tag !== "handle" && (
              <button type="button" className="small" onClick={() => onChange(promoteToInput(doc, nodeId, port))}>
                Make {port.name} a graph input</button>
            )}
            {portIssues.map((issue) => <p className="problem" role="alert" key={issue.message}>{issue.message}{issue.hint ? ` (${issue.hint})` : ""}</p>)}
          </div>
        );
      })}
      <h4>Outputs</h4>
      <ul className="port-list">
        {outputPorts(node, catalog).map((port) => (
          <li key={port.name}><code>{port.name}</code> <span className="port-type">{typeName(port.type)}</span>
            {feeds.filter((link) => link.sourcePort === port.name).map((link) => <span className="muted" key={link.id}> → {link.target}.{link.targetPort}</span>)}</li>
        ))}
      </ul>
    </section>
  );
}
