// Value widgets that follow a port's JSON Schema: choices, number ranges, switches, text, JSON.
import { useEffect, useState } from "react";
import type { Json, PortSchema } from "./api";
import type { PortType } from "./porttypes";

interface WidgetProps {
  id: string;
  label: string;
  schema: PortSchema;
  type: PortType;
  value: Json | undefined;
  onCommit: (value: Json | undefined) => void;
  readOnly?: boolean;
}

function show(value: Json | undefined): string {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 1);
}

export function ValueWidget({ id, label, schema, type, value, onCommit, readOnly }: WidgetProps) {
  const [text, setText] = useState(show(value));
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => { setText(show(value)); setProblem(null); }, [value]);
  const scalar = type.tag === "scalar" ? type.name : null;
  const placeholder = schema.default !== undefined ? `default: ${show(schema.default)}` : "";

  if (type.tag === "artifact" || type.tag === "handle") {
    return <span className="muted" id={id}>{readOnly ? show(value) || "—" : "link an output to set it"}</span>;
  }
  if (schema.enum && schema.enum.length) {
    const current = value === undefined ? "" : JSON.stringify(value);
    return (
      <select id={id} aria-label={label} value={current} disabled={readOnly}
        onChange={(event) => onCommit(event.target.value === "" ? undefined : JSON.parse(event.target.value) as Json)}>
        <option value="">{placeholder || "(not set)"}</option>
        {schema.enum.map((choice) => <option key={JSON.stringify(choice)} value={JSON.stringify(choice)}>{show(choice)}</option>)}
      </select>
    );
  }
  if (scalar === "Bool") {
    return (
      <select id={id} aria-label={label} value={value === undefined ? "" : String(value)} disabled={readOnly}
        onChange={(event) => onCommit(event.target.value === "" ? undefined : event.target.value === "true")}>
        <option value="">{placeholder || "(not set)"}</option>
        <option value="true">true</option>
        <option value="false">false</option>
      </select>
    );
  }
  const commit = () => {
    if (readOnly) return;
    if (text === "" ) { setProblem(null); if (value !== undefined) onCommit(undefined); return; }
    let parsed: Json;
    if (scalar === "Int" || scalar === "Float") {
      const number = Number(text);
      if (!Number.isFinite(number) || (scalar === "Int" && !Number.isInteger(number))) {
        setProblem(`expected ${scalar === "Int" ? "a whole number" : "a number"}`);
        return;
      }
      if (schema.minimum !== undefined && number < schema.minimum) { setProblem(`at least ${schema.minimum}`); return; }
      if (schema.maximum !== undefined && number > schema.maximum) { setProblem(`at most ${schema.maximum}`); return; }
      parsed = number;
    } else if (scalar === "Text") {
      if (schema.pattern && !new RegExp(schema.pattern).test(text)) { setProblem(`must match ${schema.pattern}`); return; }
      parsed = text;
    } else {
      try { parsed = JSON.parse(text) as Json; } catch { setProblem("not valid JSON"); return; }
    }
    setProblem(null);
    if (JSON.stringify(parsed) !== JSON.stringify(value)) onCommit(parsed);
  };
  const described = problem ? `${id}-problem` : undefined;
  const common = {
    id, "aria-label": label, "aria-invalid": problem ? true : undefined, "aria-describedby": described,
    value: text, readOnly, placeholder,
    onChange: (event: { target: { value: string } }) => setText(event.target.value),
    onBlur: commit,
  };
  const multiline = scalar === null || text.length > 40 || text.includes("\n");
  return (
    <span className="widget">
      {scalar === "Int" || scalar === "Float" ? (
        <input {...common} type="number" min={schema.minimum} max={schema.maximum} step={scalar === "Int" ? 1 : "any"}
          onKeyDown={(event) => { if (event.key === "Enter") commit(); }} />
      ) : multiline ? (
        <textarea {...common} rows={Math.min(8, Math.max(2, text.split("\n").length))} />
      ) : (
        <input {...common} type="text" onKeyDown={(event) => { if (event.key === "Enter") commit(); }} />
      )}
      {problem && <span className="problem" id={described} role="alert">{problem}</span>}
    </span>
  );
}
