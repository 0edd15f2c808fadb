// Runs: the history list, and one run watched live (nodes coloured from its SSE events).
import { useEffect, useMemo, useRef, useState } from "react";
import {
  fetchBlob, followEvents, request, type ApprovalInfo, type ArtifactJson, type GraphDocument, type GraphInfo, type Json, type JsonObject, type Page,
  type RunEvent, type RunInfo, type RunRetried, type RunSummary,
} from "./api";
import { go, type Session } from "./App";
import { Canvas, type NodeStatus } from "./Canvas";
import { Inspector } from "./Inspector";
import { ErrorNote, Pager } from "./pages";

const STATES = ["pending", "running", "waiting", "succeeded", "failed", "cancelled", "interrupted"];
const FINISHED = new Set(["succeeded", "failed", "cancelled", "interrupted"]);
/** a run's event stream ends when it has finished, and while it waits for an approval */
const SETTLED = new Set([...FINISHED, "waiting"]);
/** the plans of retries started from this tab, shown on the new run's view */
const retries = new Map<string, RunRetried>();

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
  "node.waiting": "waiting", "node.approved": "pending", "node.rejected": "pending",
};

export function RunView({ runId, session, canRun }: { runId: string; session: Session; canRun: boolean }) {
  const [run, setRun] = useState<RunInfo | null>(null);
  const [doc, setDoc] = useState<GraphDocument | null>(null);
  const [statuses, setStatuses] = useState<Record<string, NodeStatus>>({});
  const [error, setError] = useState<unknown>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);
  const [newest, setNewest] = useState<number | null>(null);
  const [retryVersion, setRetryVersion] = useState<number | null>(null);
  const docRef = useRef<GraphDocument | null>(null);
  const plan = retries.get(runId);

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
      if (SETTLED.has(found.status)) return;
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

  const failedGraph = run?.status === "failed" ? run.graph_id : null;
  useEffect(() => {
    if (!failedGraph) return;
    request<GraphInfo>("GET", `/v1/graphs/${encodeURIComponent(failedGraph)}`).then((graph) => setNewest(graph.version), setError);
  }, [failedGraph]);

  const act = async (action: "cancel" | "resume" | "again" | "retry") => {
    if (!run) return;
    try {
      if (action === "retry") {
        const version = retryVersion ?? run.graph_version;
        const answer = await request<RunRetried>("POST", `/v1/runs/${encodeURIComponent(runId)}/retry`,
          version !== run.graph_version ? { version } : undefined);
        retries.set(answer.run.id, answer);
        go(`/runs/${answer.run.id}`);
        return;
      }
      if (action === "again") {
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
  const waiting = run.status === "waiting" ? Object.values(run.nodes).filter((node) =>
    node.state === "waiting" && node.approval && node.approval.action === null) : [];
  const decided = (next: RunInfo) => { setRun(next); setGeneration((value) => value + 1); };
  return (
    <main className="editor">
      <div className="toolbar" role="toolbar" aria-label="run tools">
        <h1>Run of {run.graph_id ? <a href={`#/graphs/${run.graph_id}`}>{run.graph_name}</a> : run.graph_name} v{run.graph_version}{" "}
          <span className={`badge state-${run.status}`} aria-label="run state" data-run-state={run.status}>{run.status}</span></h1>
        {canRun && !finished && <button type="button" onClick={() => act("cancel")}>Cancel</button>}
        {canRun && ["failed", "cancelled", "interrupted"].includes(run.status) && <button type="button" onClick={() => act("resume")}>Resume</button>}
        {canRun && run.status === "failed" && <>
          {run.graph_id && newest !== null && run.graph_version !== null && newest > run.graph_version && (
            <select aria-label="graph version to retry" value={String(retryVersion ?? run.graph_version)}
              onChange={(event) => setRetryVersion(Number(event.target.value))}>
              <option value={String(run.graph_version)}>v{run.graph_version} (this run's)</option>
              <option value={String(newest)}>v{newest} (newest)</option>
            </select>
          )}
          <button type="button" onClick={() => act("retry")} title="a new run in which only the failed, skipped and changed nodes run">Retry</button>
        </>}
        {canRun && finished && run.graph_id && <button type="button" onClick={() => act("again")}>Run again</button>}
        <span className="muted">{run.duration !== null ? `${run.duration.toFixed(2)} s` : ""}</span>
      </div>
      <ErrorNote error={error} />
      {plan && <RetryPlan plan={plan} />}
      {run.errors.length > 0 && <div className="alert" role="alert">{run.errors.map((item, index) => <div key={index}>{errorText(item as Json)}</div>)}</div>}
      <div className="workspace">
        {doc ? <Canvas doc={doc} catalog={session.catalog} editable={false} statuses={statuses} selected={selected} onSelect={setSelected} />
          : <div className="canvas"><p className="muted">Waiting for the run to start…</p></div>}
        <aside className="side">
          {waiting.map((node) => <ApprovalPanel key={node.id} runId={runId} nodeId={node.id} approval={node.approval!}
            canDecide={canRun} onDecided={decided} />)}
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
    let gone = false;  // a blob fetched after the viewer went (a decided approval) is not turned into a URL
    fetchBlob(path).then((blob) => { if (!gone) { made = URL.createObjectURL(blob); setUrl(made); } },
      (failure) => { if (!gone) setError(failure); });
    return () => { gone = true; if (made) URL.revokeObjectURL(made); };
  }, [path]);
  if (error) return <ErrorNote error={error} />;
  if (!url) return <p className="muted">Loading {artifact.media_type}…</p>;
  const kind = artifact.kind || artifact.media_type.split("/")[0];
  if (kind === "image") return <img src={url} alt={name} />;
  if (kind === "audio") return <audio src={url} controls aria-label={name} />;
  if (kind === "video") return <video src={url} controls aria-label={name} />;
  return <a href={url} download={name}>Download {name} ({artifact.media_type}, {artifact.size} bytes)</a>;
}

/** What a retry runs again and what it takes from the earlier run (the answer of `POST .../retry`). */
function RetryPlan({ plan }: { plan: RunRetried }) {
  const earlier = new Map(plan.nodes.map((node) => [node.node, node.earlier_state]));
  return (
    <div className="notice" role="status" aria-label="retry plan">
      Retry of run <a href={`#/runs/${plan.retry_of}`}>{plan.retry_of.slice(0, 12)}</a>:{" "}
      <span data-rerun={plan.rerun.join(" ")}>runs again {plan.rerun.length
        ? plan.rerun.map((node) => `${node}${earlier.get(node) ? ` (${earlier.get(node)} before)` : ""}`).join(", ") : "nothing"}</span>;{" "}
      <span data-reused={plan.reused.join(" ")}>reuses {plan.reused.length ? plan.reused.join(", ") : "nothing"}</span>.
    </div>
  );
}

function showValue(value: Json): string {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

/** A `control.approve` node the run waits at: what to review (an artifact shown as the outputs are), and approve, approve edited, or reject with a reason. */
function ApprovalPanel({ runId, nodeId, approval, canDecide, onDecided }: {
  runId: string; nodeId: string; approval: ApprovalInfo; canDecide: boolean; onDecided: (run: RunInfo) => void;
}) {
  const review = approval.review;
  const [edited, setEdited] = useState(showValue(review.value));
  const [reason, setReason] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const decide = async (body: JsonObject) => {
    setBusy(true); setError(null);
    try {
      onDecided(await request<RunInfo>("POST", `/v1/runs/${encodeURIComponent(runId)}/approvals/${encodeURIComponent(nodeId)}`, body));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const approveEdited = (event: React.FormEvent) => {
    event.preventDefault();
    let value: Json = edited;
    if (review.kind === "json") {
      try { value = JSON.parse(edited) as Json; } catch { setProblem("not valid JSON"); return; }
    }
    setProblem(null);
    void decide({ action: "approve", value });
  };
  const reject = (event: React.FormEvent) => {
    event.preventDefault();
    void decide({ action: "reject", reason: reason.trim() });
  };
  const artifact = review.kind === "artifact" ? asArtifact(review.value) : null;
  const id = `approval-${nodeId}`;
  return (
    <section className="approval" aria-label={`approval of ${nodeId}`}>
      <h3><span className="badge state-waiting">waiting</span> {nodeId} asks for your approval</h3>
      {approval.message && <p className="approval-message">{approval.message}</p>}
      <h4>To review ({review.kind})</h4>
      {artifact ? <div className="output">
          <Artifact runId={runId} name={`${nodeId} review`} artifact={artifact} />
          <p className="muted">{artifact.media_type}, {artifact.size} bytes (<code>{artifact.$artifact.slice(0, 19)}…</code>)</p>
        </div>
        : <pre className="json" aria-label={`${nodeId} review`}>{showValue(review.value)}</pre>}
      {approval.deadline !== null && <p className="muted">Without a decision by {new Date(approval.deadline * 1000).toLocaleString()} the
        server will {approval.on_timeout} it.</p>}
      {canDecide ? <>
        <button type="button" className="primary" disabled={busy} onClick={() => void decide({ action: "approve" })}>Approve</button>
        {review.kind !== "artifact" && (
          <form onSubmit={approveEdited} aria-label={`approve ${nodeId} edited`} className="stack">
            <label htmlFor={`${id}-value`}>Or approve this edited {review.kind === "json" ? "JSON" : "text"}</label>
            <textarea id={`${id}-value`} rows={Math.min(8, Math.max(2, edited.split("\n").length))} value={edited}
              aria-invalid={problem ? true : undefined} aria-describedby={problem ? `${id}-problem` : undefined}
              onChange={(event) => setEdited(event.target.value)} />
            {problem && <span className="problem" id={`${id}-problem`} role="alert">{problem}</span>}
            <button type="submit" disabled={busy || edited === showValue(review.value)}>Approve edited value</button>
          </form>
        )}
        <form onSubmit={reject} aria-label={`reject ${nodeId}`} className="stack">
          <label htmlFor={`${id}-reason`}>Or reject it, saying why</label>
          <input id={`${id}-reason`} type="text" value={reason} onChange={(event) => setReason(event.target.value)} />
          <button type="submit" disabled={busy || !reason.trim()}>Reject</button>
        </form>
      </> : <p className="muted">A key with the run scope decides.</p>}
      <ErrorNote error={error} />
    </section>
  );
}
