// The REST API, called with the signed-in key. The key lives in sessionStorage only: it is sent
// in the Authorization header, never put in a URL and never logged.

const KEY_STORAGE = "nodeloom.key";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: JsonObject = {},
  ) {
    super(message);
  }
}

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY_STORAGE);
  else sessionStorage.setItem(KEY_STORAGE, key);
}

function headers(key: string | null, extra: Record<string, string> = {}): Record<string, string> {
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

async function failure(response: Response): Promise<ApiError> {
  let body: { error?: { code?: string; message?: string; details?: JsonObject } } = {};
  try {
    body = await response.json();
  } catch {
    // not JSON: described by the status alone
  }
  const error = body.error ?? {};
  return new ApiError(response.status, error.code ?? `http_${response.status}`,
    error.message ?? `${response.status} ${response.statusText}`, error.details ?? {});
}

export async function request<T>(method: string, path: string, body?: unknown, key = storedKey()): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: headers(key, body === undefined ? {} : { "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export async function fetchBlob(path: string): Promise<Blob> {
  const response = await fetch(path, { headers: headers(storedKey()) });
  if (!response.ok) throw await failure(response);
  return await response.blob();
}

/** An artifact's reference (`{"$artifact": "sha256:...", ...}`): how run inputs and outputs carry files. */
export interface ArtifactJson { $artifact: string; media_type: string; kind: string; size: number }

/** `POST /v1/artifacts`: store a file; its reference is the value of an Image/Audio/Video/File run input. */
export async function uploadArtifact(file: Blob): Promise<ArtifactJson> {
  const response = await fetch("/v1/artifacts", {
    method: "POST", headers: headers(storedKey(), { "Content-Type": file.type || "application/octet-stream" }), body: file,
  });
  if (!response.ok) throw await failure(response);
  return (await response.json()) as ArtifactJson;
}

export interface RunEvent {
  seq: number;
  kind: string;
  time: number;
  node: string | null;
  data: JsonObject;
}

/** Follow a run's Server-Sent Events (fetch, not EventSource, so the key goes in a header). */
export async function followEvents(runId: string, onEvent: (event: RunEvent) => void, signal: AbortSignal): Promise<void> {
  let after = 0;
  for (let attempt = 0; attempt < 20 && !signal.aborted; attempt++) {
    let finished = false;
    try {
      const response = await fetch(`/v1/runs/${encodeURIComponent(runId)}/events?after=${after}`, {
        headers: headers(storedKey(), { Accept: "text/event-stream" }), signal,
      });
      if (!response.ok || !response.body) throw await failure(response);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = message.split("\n").filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).trimStart()).join("\n");
          if (!data) continue;
          const event = JSON.parse(data) as RunEvent;
          after = Math.max(after, event.seq);
          onEvent(event);
          if (event.kind === "run.finished") finished = true;
        }
      }
      return; // the server ends the stream when the run has finished
    } catch (error) {
      if (signal.aborted || finished) return;
      if (error instanceof ApiError && error.status < 500) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
    }
  }
}

// -- response shapes (api/schemas.py) --------------------------------------------------------

export interface NodeTypeInfo {
  type: string;
  version: number;
  category: string;
  description: string;
  resources: string;
  queue: string;
  deterministic: boolean;
  retry: JsonObject;
  timeout: number | null;
  inputs: PortsSchema;
  outputs: PortsSchema;
}

export interface PortsSchema {
  properties: Record<string, PortSchema>;
  required: string[];
  additionalProperties?: boolean | PortSchema;
}

export interface PortSchema {
  "x-nodeloom-type": Json;
  description?: string;
  default?: Json;
  minimum?: number;
  maximum?: number;
  enum?: Json[];
  pattern?: string;
  type?: string;
  [key: string]: Json | undefined;
}

export interface GraphSummary {
  id: string;
  name: string;
  description: string;
  tags: string[];
  version: number;
  created_at: number;
  updated_at: number;
}

export interface GraphInfo extends GraphSummary {
  graph: GraphDocument;
  graph_version: number;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface NodeDocument {
  type: string;
  inputs: Record<string, Json>;
  label?: string;
  [option: string]: Json | undefined;
}

export interface GraphInputDocument {
  type: Json;
  default?: Json;
  description?: string;
  [constraint: string]: Json | undefined;
}

export interface GraphDocument {
  format_version?: number;
  name: string;
  description?: string;
  inputs?: Record<string, GraphInputDocument>;
  nodes: Record<string, NodeDocument>;
  outputs?: Record<string, { node: string; output: string }>;
  metadata?: JsonObject;
}

export interface NodeRunInfo {
  id: string;
  type: string;
  state: string;
  attempts: number;
  duration: number | null;
  error: JsonObject | null;
  approval?: ApprovalInfo | null;
}

/** A `control.approve` node's request (`review`, `message`) and, once made, the decision. */
export interface ApprovalInfo {
  review: { kind: "text" | "json" | "artifact"; value: Json };
  message: string;
  timeout: number | null;
  on_timeout: string;
  deadline: number | null;
  action: string | null;
  reason: string | null;
  edited: boolean;
  value: Json;
  decided_by: JsonObject | null;
}

export interface RunSummary {
  id: string;
  status: string;
  graph_id: string | null;
  graph_version: number | null;
  graph_name: string;
  created_at: number;
  duration: number | null;
}

export interface RunInfo extends RunSummary {
  inputs: JsonObject;
  outputs: JsonObject;
  errors: JsonObject[];
  nodes: Record<string, NodeRunInfo>;
}

export interface RetryNodeInfo {
  node: string;
  type: string;
  action: "run" | "cached";
  reason: string | null;
  earlier_state: string | null;
}

/** `POST /v1/runs/{id}/retry`: the new run, and which nodes run again and which take the earlier results. */
export interface RunRetried {
  retry_of: string;
  run: RunInfo;
  nodes: RetryNodeInfo[];
  rerun: string[];
  reused: string[];
}

export interface Issue {
  code: string;
  node: string | null;
  port: string | null;
  message: string;
  hint?: string | null;
}

export interface DraftResponse {
  ok: boolean;
  graph: GraphDocument | null;
  refusal: { code: string; message: string; unmet: string[] } | null;
  notes: string[];
  /** for an edit of a `base` graph: +node, -node, ~node.port lines */
  diff: string[] | null;
}

export interface KeyInfo {
  id: string;
  prefix: string;
  project: string;
  scopes: string[];
}
