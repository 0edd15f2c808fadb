// Runs: the history list, and one run watched live (nodes coloured from its SSE events).
import { useEffect, useMemo, useRef, useState } from "react";
import {
  fetchBlob, followEvents, request, type GraphDocument, type GraphInfo, type Json, type JsonObject, type Page, type RunEvent,
  type RunInfo, type RunSummary,
} from "./api";
import { go, type Session } from "./App";
import { Canvas, type NodeStatus } from "./Canvas";
import { Inspector } from "./Inspector";
import { ErrorNote, Pager } from "./pages";

const STATES = ["pending", "running", "succeeded", "failed", "cancelled", "interrupted"];
const FINISHED = new Set(["succeeded", "failed", "cancelled", "interrupted"]);

export function RunList({ graphId, status }: { graphId: string | null; status: string | null }) {
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState<Page<RunSummary> | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const query = new URLSearchParams({ limit: "20", offset: String(offset) });
    if (graphId) query.set("graph_id", graphId);
    if (status) query.set("status", status);
    request<Page<RunSummary>>("GET", `/v1/runs?${query}`).then(setPage, setError);
  }, [graphId, status, offset]);
  const filter = (next: { graph?: string | null; status?: string | null }) => {
    const query = new URLSearchParams();
    const graph = next.graph === undefined ? graphId : next.graph;
    const state = next.status === undefined ? status : next.status;
    if (graph) query.set("graph", graph);
    if (state) query.set("status", state);
    go(`/runs${query.size ? `?${query}` : ""}`);
  };
  return (
    <main className="page">
      <h1>Runs</h1>
      <div className="filters">
        <label>State <select aria-label="filter runs by state" value={status ?? ""} onChange={(event) => filter({ status: event.target.value || null })}>
          <option value="">any</option>
          {STATES.map((state) => <option key={state} value={state}>{state}</option>)}
        </select></label>
        {graphId && <button type="button" className="tag" onClick={() => filter({ graph: null })} aria-label="show runs of every graph">graph {graphId.slice(0, 8)} ×</button>}
      </div>
      <ErrorNote error={error} />
      {page && <>
        <table className="list" aria-label="runs">
          <thead><tr><th>Run</th><th>Graph</th><th>State</th><th>Started</th><th>Duration</th></tr></thead>
          <tbody>
            {page.items.map((run) => (
              <tr key={run.id}>
                <td><a href={`#/runs/${run.id}`}>{run.id.slice(0, 12)}</a></td>
                <td>{run.graph_id ? <button type="button" className="link" onClick={() => filter({ graph: run.graph_id })}>{run.graph_name} v{run.graph_version}</button> : run.graph_name}</td>
                <td><span className={`badge state-${run.status}`}>{run.status}</span></td>
                <td>{new Date(run.created_at * 1000).toLocaleString()}</td>
                <td>{run.duration === null ? "—" : `${run.duration.toFixed(2)} s`}</td>
              </tr>
            ))}
            {page.items.length === 0 && <tr><td colSpan={5} className="muted">No runs.</td></tr>}
          </tbody>
        </table>
        <Pager offset={offset} total={page.total} onOffset={setOffset} what="runs" />
      </>}
    </main>
  );
}

function errorText(error: Json | undefined): string {
  if (!error || typeof error !== "object" || Array.isArray(error)) return error === undefined ? "" : String(error);
  const message = (error as JsonObject).message;
  return typeof message === "string" ? message : JSON.stringify(error);
}

const EVENT_STATE: Record<string, string> = {
  "node.started": "running", "node.progress": "running", "node.cached": "cached", "node.done": "done",
  "node.retrying": "running", "node.failed": "failed", "node.skipped": "skipped", "node.cancelled": "cancelled",
};

export function RunView({ runId, session, canRun }: { runId: string; session: Session; canRun: boolean }) {
  const [run, setRun] = useState<RunInfo | null>(null);
  const [doc, setDoc] = useState<GraphDocument | null>(null);
  const [statuses, setStatuses] = useState<Record<string, NodeStatus>>({});
  const [error, setError] = useState<unknown>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);
  const docRef = useRef<GraphDocument | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    const load = async () => {
      const found = await request<RunInfo>("GET", `/v1/runs/${encodeURIComponent(runId)}`);
      setRun(found);
      if (!docRef.current && found.graph_id) {
        const graph = await request<GraphInfo>("GET", `/v1/graphs/${encodeURIComponent(found.graph_id)}?version=${found.graph_version}`);
        docRef.current = graph.graph;
        setDoc(graph.graph);
      }
      const initial: Record<string, NodeStatus> = {};
      for (const [id, node] of Object.entries(found.nodes)) initial[id] = { state: node.state, error: node.error ? errorText(node.error as Json) : undefined };
      setStatuses(initial);
      if (FINISHED.has(found.status)) return;
      await followEvents(runId, (event: RunEvent) => {
        if (event.kind === "run.started" && !docRef.current && event.data.graph && typeof event.data.graph === "object") {
          docRef.current = event.data.graph as unknown as GraphDocument;
          setDoc(docRef.current);
        }
        if (event.kind === "run.started" && Array.isArray(event.data.nodes)) {
          setStatuses((current) => {
            const next = { ...current };
            for (const id of event.data.nodes as string[]) if (!next[id] || FINISHED.has(next[id].state)) next[id] = { state: "pending" };
            return next;
          });
        }
        const state = event.node ? EVENT_STATE[event.kind] : undefined;
        if (event.node && state) {
          const node = event.node;
          setStatuses((current) => ({ ...current, [node]: {
            state,
            done: typeof event.data.done === "number" ? event.data.done : undefined,
            total: typeof event.data.total === "number" ? event.data.total : undefined,
            message: typeof event.data.message === "string" ? (current[node]?.message ?? "") + event.data.message : current[node]?.message,
            error: event.kind === "node.failed" ? errorText(event.data.error) : event.kind === "node.skipped" ? `skipped: ${errorText(event.data.because)}` : undefined,
          } }));
        }
        if (event.kind === "run.finished") {
          request<RunInfo>("GET", `/v1/runs/${encodeURIComponent(runId)}`).then(setRun, setError);
        }
      }, abort.signal);
    };
    load().catch((failure) => { if (!abort.signal.aborted) setError(failure); });
    return () => abort.abort();
  }, [runId, generation]);

  const act = async (action: "cancel" | "resume" | "retry") => {
    if (!run) return;
    try {
      if (action === "retry") {
        const next = await request<RunSummary>("POST", "/v1/runs", { graph_id: run.graph_id, version: run.graph_version, inputs: run.inputs });
        go(`/runs/${next.id}`);
        return;
      }
      setRun(await request<RunInfo>("POST", `/v1/runs/${encodeURIComponent(runId)}/${action}`));
      if (action === "resume") setGeneration((value) => value + 1);
    } catch (failure) {
      setError(failure);
    }
  };

  if (!run) return <main className="page">{error ? <ErrorNote error={error} /> : <p>Loading…</p>}</main>;
  const finished = FINISHED.has(run.status);
  return (
    <main className="editor">
      <div className="toolbar" role="toolbar" aria-label="run tools">
        <h1>Run of {run.graph_id ? <a href={`#/graphs/${run.graph_id}`}>{run.graph_name}</a> : run.graph_name} v{run.graph_version}{" "}
          <span className={`badge state-${run.status}`} aria-label="run state" data-run-state={run.status}>{run.status}</span></h1>
        {canRun && !finished && <button type="button" onClick={() => act("cancel")}>Cancel</button>}
        {canRun && ["failed", "cancelled", "interrupted"].includes(run.status) && <button type="button" onClick={() => act("resume")}>Resume</button>}
        {canRun && finished && run.graph_id && <button type="button" onClick={() => act("retry")}>Run again</button>}
        <span className="muted">{run.duration !== null ? `${run.duration.toFixed(2)} s` : ""}</span>
      </div>
      <ErrorNote error={error} />
      {run.errors.length > 0 && <div className="alert" role="alert">{run.errors.map((item, index) => <div key={index}>{errorText(item as Json)}</div>)}</div>}
      <div className="workspace">
        {doc ? <Canvas doc={doc} catalog={session.catalog} editable={false} statuses={statuses} selected={selected} onSelect={setSelected} />
          : <div className="canvas"><p className="muted">Waiting for the run to start…</p></div>}
        <aside className="side">
          {selected && statuses[selected]?.message && (
            <section className="inspector" aria-label="streamed text"><h3>{selected}: streamed text</h3>
              <pre className="json">{statuses[selected].message}</pre></section>
          )}
          {selected && doc && <Inspector doc={doc} catalog={session.catalog} nodeId={selected} editable={false} issues={[]} onChange={() => undefined} onRefused={() => undefined} />}
          <section className="outputs" aria-label="outputs">
            <h3>Outputs</h3>
            {!finished && <p className="muted">Shown when the run has finished.</p>}
            {Object.entries(run.outputs).map(([name, value]) => (
              <div className="output" key={name}><h4>{name}</h4><OutputValue runId={runId} name={name} value={value} /></div>
            ))}
          </section>
        </aside>
      </div>
    </main>
  );
}

interface ArtifactJson { $artifact: string; media_type: string; kind: string; size: number }

function asArtifact(value: Json): ArtifactJson | null {
  return value && typeof value === "object" && !Array.isArray(value) && typeof value.$artifact === "string" ? value as unknown as ArtifactJson : null;
}

function OutputValue({ runId, name, value }: { runId: string; name: string; value: Json }) {
  const artifact = asArtifact(value);
  if (artifact) return <Artifact runId={runId} name={name} artifact={artifact} />;
  if (Array.isArray(value) && value.length && value.every((item) => asArtifact(item))) {
    return <div className="gallery">{value.map((item, index) => <Artifact key={index} runId={runId} name={`${name} ${index + 1}`} artifact={asArtifact(item)!} />)}</div>;
  }
  return <pre className="json" aria-label={`${name} value`}>{typeof value === "string" ? value : JSON.stringify(value, null, 2)}</pre>;
}

function Artifact({ runId, name, artifact }: { runId: string; name: string; artifact: ArtifactJson }) {
  const [url, setUrl] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const path = useMemo(() => `/v1/runs/${encodeURIComponent(runId)}/artifacts/${encodeURIComponent(artifact.$artifact)}`, [runId, artifact.$artifact]);
  useEffect(() => {
    let made: string | null = null;
    fetchBlob(path).then((blob) => { made = URL.createObjectURL(blob); setUrl(made); }, setError);
    return () => { if (made) URL.revokeObjectURL(made); };
  }, [path]);
  if (error) return <ErrorNote error={error} />;
  if (!url) return <p className="muted">Loading {artifact.media_type}…</p>;
  const kind = artifact.kind || artifact.media_type.split("/")[0];
  if (kind === "image") return <img src={url} alt={name} />;
  if (kind === "audio") return <audio src={url} controls aria-label={name} />;
  if (kind === "video") return <video src={url} controls aria-label={name} />;
  return <a href={url} download={name}>Download {name} ({artifact.media_type}, {artifact.size} bytes)</a>;
}
