// A graph on the canvas: inspect, edit with undo/redo, save as a new version, start a run.
import { useCallback, useEffect, useMemo, useState } from "react";
import { ApiError, request, uploadArtifact, type DraftResponse, type GraphDocument, type GraphInfo, type Issue, type Json, type RunSummary } from "./api";
import { go, type Session } from "./App";
import { Canvas } from "./Canvas";
import {
  addNode, autoLayout, deleteNode, graphInputPorts, INPUTS_NODE, OUTPUTS_NODE, positions, withPositions, type Catalog, type Positions,
} from "./graph";
import { Inspector } from "./Inspector";
import { ErrorNote } from "./pages";
import { typeName, type PortType } from "./porttypes";
import { ValueWidget } from "./widgets";

interface History { past: GraphDocument[]; present: GraphDocument; future: GraphDocument[] }

function useHistory(initial: GraphDocument | null) {
  const [history, setHistory] = useState<History | null>(initial ? { past: [], present: initial, future: [] } : null);
  const reset = useCallback((doc: GraphDocument) => setHistory({ past: [], present: doc, future: [] }), []);
  const change = useCallback((doc: GraphDocument) => setHistory((current) => current &&
    { past: [...current.past.slice(-99), current.present], present: doc, future: [] }), []);
  const undo = useCallback(() => setHistory((current) => current && current.past.length
    ? { past: current.past.slice(0, -1), present: current.past[current.past.length - 1], future: [current.present, ...current.future] } : current), []);
  const redo = useCallback(() => setHistory((current) => current && current.future.length
    ? { past: [...current.past, current.present], present: current.future[0], future: current.future.slice(1) } : current), []);
  return { history, reset, change, undo, redo };
}

function issuesOf(error: unknown): Issue[] {
  if (error instanceof ApiError && Array.isArray(error.details.issues)) return error.details.issues as unknown as Issue[];
  return [];
}

export function GraphEditor({ graphId, session, canEdit }: { graphId: string; session: Session; canEdit: boolean }) {
  const [info, setInfo] = useState<GraphInfo | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [issues, setIssues] = useState<Issue[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [refused, setRefused] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [panel, setPanel] = useState<"inspect" | "add" | "run" | "change">("inspect");
  const { history, reset, change, undo, redo } = useHistory(null);
  const narrow = useNarrow();
  const editable = canEdit && !narrow;

  useEffect(() => {
    request<GraphInfo>("GET", `/v1/graphs/${encodeURIComponent(graphId)}`).then((found) => {
      setInfo(found);
      const saved = positions(found.graph);
      reset(Object.keys(saved).length ? found.graph : withPositions(found.graph, autoLayout(found.graph, session.catalog)));
    }, setError);
  }, [graphId, reset, session.catalog]);

  useEffect(() => {
    if (!editable) return;
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement;
      if (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
        event.preventDefault();
        if (event.shiftKey) redo(); else undo();
      } else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "y") {
        event.preventDefault();
        redo();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [editable, undo, redo]);

  const edit = useCallback((doc: GraphDocument) => { change(doc); setRefused(null); setNotice(null); }, [change]);
  const refuse = useCallback((reason: string) => setRefused(reason), []);
  const move = useCallback((placed: Positions) => { if (history) change(withPositions(history.present, placed)); }, [change, history]);

  if (error) return <main className="page"><ErrorNote error={error} /></main>;
  if (!info || !history) return <main className="page"><p>Loading…</p></main>;
  const doc = history.present;
  const dirty = history.past.length > 0;

  const save = async () => {
    setNotice(null);
    try {
      const saved = await request<GraphInfo>("PUT", `/v1/graphs/${encodeURIComponent(graphId)}`, { graph: doc });
      setInfo(saved);
      setIssues([]);
      reset(doc);
      setNotice(`Saved version ${saved.version}`);
    } catch (failure) {
      setIssues(issuesOf(failure));
      setNotice(null);
      setError(issuesOf(failure).length ? null : failure);
      if (issuesOf(failure).length) setRefused(`The server refused this version: ${issuesOf(failure).length} problem(s), shown on the nodes`);
    }
  };

  return (
    <main className="editor">
      <div className="toolbar" role="toolbar" aria-label="graph tools">
        <h1>{info.name} <span className="muted">v{info.graph_version}{dirty ? " (edited)" : ""}</span></h1>
        {editable && <>
          <button type="button" onClick={() => setPanel(panel === "add" ? "inspect" : "add")} aria-pressed={panel === "add"}>Add node</button>
          <button type="button" onClick={undo} disabled={!history.past.length} aria-label="undo" title="undo (Ctrl+Z)">Undo</button>
          <button type="button" onClick={redo} disabled={!history.future.length} aria-label="redo" title="redo (Ctrl+Shift+Z)">Redo</button>
          <button type="button" disabled={!selected || selected === INPUTS_NODE || selected === OUTPUTS_NODE}
            onClick={() => { if (selected) { edit(deleteNode(doc, selected)); setSelected(null); } }}>Delete node</button>
          <button type="button" onClick={() => edit(withPositions(doc, autoLayout(doc, session.catalog)))}>Lay out</button>
          <button type="button" onClick={() => setPanel(panel === "change" ? "inspect" : "change")} aria-pressed={panel === "change"}>Change…</button>
          <button type="button" onClick={save} disabled={!dirty} className="primary">Save version</button>
        </>}
        <button type="button" onClick={() => setPanel(panel === "run" ? "inspect" : "run")} aria-pressed={panel === "run"} disabled={!canEdit}>Run…</button>
        <a href={`#/runs?graph=${encodeURIComponent(graphId)}`}>Runs of this graph</a>
      </div>
      {refused && <div className="alert" role="alert">Refused: {refused}</div>}
      {notice && <div className="notice" role="status">{notice}</div>}
      <ErrorNote error={error} />
      <div className="workspace">
        <Canvas doc={doc} catalog={session.catalog} editable={editable} issues={issues} selected={selected}
          onSelect={setSelected} onChange={edit} onMove={move} onRefused={refuse} />
        <aside className="side">
          {panel === "add" && editable ? <AddNode session={session} onAdd={(type) => {
            const info = session.catalog.get(type)!;
            const placed = positions(doc);
            const right = Math.max(0, ...Object.values(placed).map((point) => point.x)) + 300;
            const [next, id] = addNode(doc, info, { x: right, y: 40 });
            edit(next);
            setSelected(id);
            setPanel("inspect");
          }} /> : panel === "change" && editable ? <ChangeGraph doc={doc} catalog={session.catalog} onChange={(next) => { edit(next); setSelected(null); }} />
          : panel === "run" ? <RunForm graphId={graphId} version={info.graph_version} doc={doc} dirty={dirty} /> : selected ? (
            <Inspector doc={doc} catalog={session.catalog} nodeId={selected} editable={editable} issues={issues} onChange={edit} onRefused={refuse} />
          ) : <section className="inspector" aria-label="inspector"><p className="muted">Select a node to inspect it{editable ? ", drag from an output socket to an input socket to link them" : ""}.</p>
            {issues.filter((issue) => !issue.node).map((issue) => <p className="problem" key={issue.message}>{issue.message}</p>)}</section>}
        </aside>
      </div>
    </main>
  );
}

function AddNode({ session, onAdd }: { session: Session; onAdd: (type: string) => void }) {
  const [search, setSearch] = useState("");
  const found = useMemo(() => [...session.catalog.values()].filter((info) =>
    `${info.type} ${info.description}`.toLowerCase().includes(search.toLowerCase())).sort((a, b) => a.type.localeCompare(b.type)), [session.catalog, search]);
  return (
    <section className="inspector" aria-label="add a node">
      <h3>Add a node</h3>
      <input type="search" autoFocus aria-label="search node types" placeholder="e.g. image, template, llm" value={search}
        onChange={(event) => setSearch(event.target.value)} />
      <ul className="catalog">
        {found.map((info) => (
          <li key={info.type}><button type="button" className="link" onClick={() => onAdd(info.type)} aria-label={`add ${info.type}`}>
            <code>{info.type}</code></button> <span className="muted">{info.description.split(". ")[0]}</span></li>
        ))}
      </ul>
    </section>
  );
}

/** "Change this graph: ..." — the server's drafter edits the open graph (`POST /v1/drafts` with `base`); the edit is
 * shown as its diff and put on the canvas, unsaved (and undoable) until Save version. */
function ChangeGraph({ doc, catalog, onChange }: { doc: GraphDocument; catalog: Catalog; onChange: (doc: GraphDocument) => void }) {
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [answer, setAnswer] = useState<DraftResponse | null>(null);
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true); setError(null); setAnswer(null);
    try {
      const draft = await request<DraftResponse>("POST", "/v1/drafts", { text: text.trim(), base: doc });
      setAnswer(draft);
      if (draft.ok && draft.graph) {
        const placed = positions(draft.graph);
        const ids = [...Object.keys(draft.graph.nodes), ...(Object.keys(draft.graph.inputs ?? {}).length ? [INPUTS_NODE] : []),
          ...(Object.keys(draft.graph.outputs ?? {}).length ? [OUTPUTS_NODE] : [])];
        onChange(ids.every((id) => placed[id]) ? draft.graph : withPositions(draft.graph, autoLayout(draft.graph, catalog)));
      }
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const kind = (line: string) => line.startsWith("+") ? "added" : line.startsWith("-") ? "removed" : "changed";
  return (
    <section className="inspector" aria-label="change this graph">
      <h3>Change this graph</h3>
      <form onSubmit={submit} aria-label="describe a change" className="stack">
        <label htmlFor="change-text">What should change? (add, remove, replace, set values)</label>
        <textarea id="change-text" rows={3} value={text} onChange={(event) => setText(event.target.value)}
          placeholder="make it square; remove the title card; add a voice-over" />
        <button type="submit" className="primary" disabled={busy || !text.trim()}>{busy ? "Drafting the change…" : "Draft the change"}</button>
      </form>
      <ErrorNote error={error} />
      {answer && !answer.ok && <div className="problem" role="alert"><p>The drafter declined: {answer.refusal?.message}</p></div>}
      {answer && answer.ok && <>
        <h4>Changes, shown on the canvas (unsaved: Save version keeps them, Undo takes them back)</h4>
        <ul className="diff" aria-label="changes">
          {(answer.diff ?? []).map((line, index) => <li key={index} className={kind(line)}>{line}</li>)}
          {(answer.diff ?? []).length === 0 && <li className="muted">No change.</li>}
        </ul>
      </>}
    </section>
  );
}

function RunForm({ graphId, version, doc, dirty }: { graphId: string; version: number; doc: GraphDocument; dirty: boolean }) {
  const ports = graphInputPorts(doc);
  const [values, setValues] = useState<Record<string, Json>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [uploading, setUploading] = useState(0);
  const set = (name: string, value: Json | undefined) => setValues((current) => {
    const next = { ...current };
    if (value === undefined) delete next[name]; else next[name] = value;
    return next;
  });
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    try {
      const run = await request<RunSummary>("POST", "/v1/runs", { graph_id: graphId, version, inputs: values });
      go(`/runs/${run.id}`);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="inspector" aria-label="run the graph">
      <h3>Run version {version}</h3>
      {dirty && <p className="muted">Unsaved edits are not run: save a version first.</p>}
      <form onSubmit={submit} aria-label="run inputs">
        {ports.length === 0 && <p className="muted">This graph has no inputs.</p>}
        {ports.map((port) => (
          <div className="field" key={port.name}>
            <label htmlFor={`run-${port.name}`}><code>{port.name}</code> <span className="port-type">{typeName(port.type)}</span>{port.required ? " required" : ""}</label>
            {port.schema.description && <div className="muted">{String(port.schema.description)}</div>}
            {port.type.tag === "artifact" ? (
              <FileInput id={`run-${port.name}`} label={`${port.name} input`} type={port.type} onUploading={setUploading}
                onCommit={(value) => set(port.name, value)} />
            ) : (
              <ValueWidget id={`run-${port.name}`} label={`${port.name} input`} schema={port.schema} type={port.type}
                value={values[port.name]} onCommit={(value) => set(port.name, value)} />
            )}
          </div>
        ))}
        <button type="submit" className="primary" disabled={busy || uploading > 0}>{busy ? "Submitting…" : uploading ? "Uploading…" : "Start run"}</button>
      </form>
      <ErrorNote error={error} />
    </section>
  );
}

const ACCEPT: Record<string, string> = { image: "image/*", audio: "audio/*", video: "video/*" };

/** A file chosen for an Image/Audio/Video/File input, uploaded at once (`POST /v1/artifacts`): its reference is the value. */
function FileInput({ id, label, type, onCommit, onUploading }: {
  id: string; label: string; type: Extract<PortType, { tag: "artifact" }>; onCommit: (value: Json | undefined) => void;
  onUploading: (change: (count: number) => number) => void;
}) {
  const [state, setState] = useState<{ text: string; problem: boolean } | null>(null);
  const choose = async (file: File | undefined) => {
    onCommit(undefined);
    if (!file) { setState(null); return; }
    setState({ text: `Uploading ${file.name}…`, problem: false });
    onUploading((count) => count + 1);
    try {
      const ref = await uploadArtifact(file);
      onCommit(ref as unknown as Json);
      setState({ text: `Uploaded ${file.name} (${ref.media_type}, ${ref.size} bytes)`, problem: false });
    } catch (failure) {
      setState({ text: `Upload of ${file.name} failed: ${failure instanceof ApiError ? failure.message : String(failure)}`, problem: true });
    } finally {
      onUploading((count) => count - 1);
    }
  };
  return (
    <span className="widget">
      <input id={id} type="file" aria-label={label} accept={ACCEPT[type.kind]} aria-describedby={state ? `${id}-upload` : undefined}
        onChange={(event) => void choose(event.target.files?.[0])} />
      {state && <span id={`${id}-upload`} className={state.problem ? "problem" : "muted"} role={state.problem ? "alert" : "status"}>{state.text}</span>}
    </span>
  );
}

function useNarrow(): boolean {
  const query = "(max-width: 700px)";
  const [narrow, setNarrow] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const list = window.matchMedia(query);
    const update = () => setNarrow(list.matches);
    list.addEventListener("change", update);
    return () => list.removeEventListener("change", update);
  }, []);
  return narrow;
}
