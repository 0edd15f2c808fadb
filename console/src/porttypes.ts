// Port types as the catalog writes them (`x-nodeloom-type`), and `canConnect`, which mirrors
// nodeloom.core.types.can_connect so a wrong link is refused while it is drawn, with the same reason.
import type { Json } from "./api";

export type PortType =
  | { tag: "any" }
  | { tag: "scalar"; name: string }
  | { tag: "json"; name: string; schema: string | null }
  | { tag: "list"; item: PortType }
  | { tag: "artifact"; name: string; kind: string }
  | { tag: "handle"; name: string };

// nodeloom.core.artifacts.ARTIFACT_KIND_PARENTS
const KIND_PARENTS: Record<string, string | null> = {
  file: null, image: "file", audio: "file", video: "file", tensor: null, latent: "tensor", conditioning: "tensor",
};
const ARTIFACTS: Record<string, string> = {
  File: "file", Image: "image", Audio: "audio", Video: "video", Tensor: "tensor", Latent: "latent",
  Conditioning: "conditioning",
};
const SCALARS = new Set(["Text", "Int", "Float", "Bool"]);

function canonical(value: Json): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
}

export function parseType(spec: Json | undefined): PortType {
  if (spec && typeof spec === "object" && !Array.isArray(spec)) {
    if (spec.type === "Json") {
      const schema = spec.schema ?? null;
      const title = schema && typeof schema === "object" && !Array.isArray(schema) ? schema.title : undefined;
      const name = schema === null ? "Json" : typeof title === "string" ? `Json[${title}]` : "Json[schema]";
      return { tag: "json", name, schema: schema === null ? null : canonical(schema) };
    }
    if (spec.type === "List") return { tag: "list", item: parseType(spec.item ?? "Any") };
    if (typeof spec.type === "string") return parseType(spec.type);
    return { tag: "any" };
  }
  const text = typeof spec === "string" ? spec.trim() : "Any";
  if (text.startsWith("List[") && text.endsWith("]")) return { tag: "list", item: parseType(text.slice(5, -1)) };
  if (SCALARS.has(text)) return { tag: "scalar", name: text };
  if (text === "Json") return { tag: "json", name: "Json", schema: null };
  if (text in ARTIFACTS) return { tag: "artifact", name: text, kind: ARTIFACTS[text] };
  if (text === "Any") return { tag: "any" };
  return { tag: "handle", name: text };
}

export function typeName(type: PortType): string {
  switch (type.tag) {
    case "any": return "Any";
    case "list": return `List[${typeName(type.item)}]`;
    default: return type.name;
  }
}

function same(a: PortType, b: PortType): boolean {
  if (a.tag !== b.tag) return false;
  if (a.tag === "list" && b.tag === "list") return same(a.item, b.item);
  if (a.tag === "json" && b.tag === "json") return a.schema === b.schema;
  return typeName(a) === typeName(b);
}

function kindIsA(kind: string, ancestor: string): boolean {
  for (let current: string | null | undefined = kind; current; current = KIND_PARENTS[current]) {
    if (current === ancestor) return true;
  }
  return false;
}

export interface Connection { ok: boolean; reason?: string }

/** Whether a value of type `src` (an output) may feed a port of type `dst` (an input). */
export function canConnect(src: PortType, dst: PortType): Connection {
  if (same(src, dst) || src.tag === "any" || dst.tag === "any") return { ok: true };
  const srcName = typeName(src);
  const dstName = typeName(dst);
  if (srcName === "Int" && dstName === "Float") return { ok: true };
  if (src.tag === "json" && dst.tag === "json") {
    if (src.schema === null || dst.schema === null) return { ok: true };
    return { ok: false, reason: `${srcName} and ${dstName} are bound to different schemas` };
  }
  if (src.tag === "list" && dst.tag === "list") {
    const inner = canConnect(src.item, dst.item);
    return inner.ok ? inner : { ok: false, reason: `${srcName} cannot feed ${dstName}: ${inner.reason}` };
  }
  if (src.tag === "artifact" && dst.tag === "artifact") {
    return kindIsA(src.kind, dst.kind) ? { ok: true } : { ok: false, reason: `${srcName} is not a kind of ${dstName}` };
  }
  if (dst.tag === "list" && canConnect(src, dst.item).ok) {
    return { ok: false, reason: `${srcName} cannot feed ${dstName}: a single value is not a list` };
  }
  return { ok: false, reason: `${srcName} cannot feed ${dstName}` };
}

export function isMedia(type: PortType): "image" | "audio" | "video" | null {
  if (type.tag !== "artifact") return null;
  return type.kind === "image" || type.kind === "audio" || type.kind === "video" ? type.kind : null;
}
