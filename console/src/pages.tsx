// The graphs list, the node catalog and the "describe a workflow" box.
import { useEffect, useMemo, useState } from "react";
import { ApiError, request, type DraftResponse, type GraphInfo, type GraphSummary, type Page } from "./api";
import { go, type Session } from "./App";
import { TypeDetails } from "./Inspector";

const PAGE = 20;

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const text = error instanceof ApiError ? `${error.message} (${error.code})` : String(error);
  return <p className="problem" role="alert">{text}</p>;
}

function when(seconds: number): string {
  return new Date(seconds * 1000).toLocaleString();
}

export function GraphList({ canEdit }: { canEdit: boolean }) {
  const [name, setName] = useState("");
  const [tag, setTag] = useState("");
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState<Page<GraphSummary> | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const query = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (name.trim()) query.set("name", name.trim());
    if (tag.trim()) query.set("tag", tag.trim());
    const timer = setTimeout(() => {
      request<Page<GraphSummary>>("GET", `/v1/graphs?${query}`).then((found) => { setPage(found); setError(null); }, setError);
    }, 150);
    return () => clearTimeout(timer);
  }, [name, tag, offset]);
  return (
    <main className="page">
      <h1>Graphs</h1>
      <div className="filters" role="search">
        <label>Name <input type="search" value={name} onChange={(event) => { setName(event.target.value); setOffset(0); }} aria-label="search graphs by name" /></label>
        <label>Tag <input type="text" value={tag} onChange={(event) => { setTag(event.target.value); setOffset(0); }} aria-label="filter graphs by tag" /></label>
        {canEdit && <a className="button" href="#/draft">Describe a workflow…</a>}
      </div>
      <ErrorNote error={error} />
      {page && (
        <>
          <table className="list" aria-label="graphs">
            <thead><tr><th>Name</th><th>Tags</th><th>Version</th><th>Updated</th></tr></thead>
            <tbody>
              {page.items.map((graph) => (
                <tr key={graph.id}>
                  <td><a href={`#/graphs/${graph.id}`}>{graph.name}</a>{graph.description && <div className="muted">{graph.description}</div>}</td>
                  <td>{graph.tags.map((name) => <button type="button" className="tag" key={name} onClick={() => setTag(name)} aria-label={`filter by tag ${name}`}>{name}</button>)}</td>
                  <td>v{graph.version}</td>
                  <td>{when(graph.updated_at)}</td>
                </tr>
              ))}
              {page.items.length === 0 && <tr><td colSpan={4} className="muted">No graphs{name || tag ? " match" : " yet: save one with the SDK or describe a workflow"}.</td></tr>}
            </tbody>
          </table>
          <Pager offset={offset} total={page.total} onOffset={setOffset} what="graphs" />
        </>
      )}
    </main>
  );
}

export function Pager({ offset, total, onOffset, what }: { offset: number; total: number; onOffset: (offset: number) => void; what: string }) {
  return (
    <nav className="pager" aria-label={`${what} pages`}>
      <button type="button" disabled={offset === 0} onClick={() => onOffset(Math.max(0, offset - PAGE))}>Previous</button>
      <span>{total === 0 ? 0 : offset + 1}–{Math.min(total, offset + PAGE)} of {total}</span>
      <button type="button" disabled={offset + PAGE >= total} onClick={() => onOffset(offset + PAGE)}>Next</button>
    </nav>
  );
}

export function CatalogPage({ session }: { session: Session }) {
  const [search, setSearch] = useState("");
  const [chosen, setChosen] = useState<string | null>(null);
  const types = useMemo(() => [...session.catalog.values()].filter((info) =>
    `${info.type} ${info.description} ${info.category}`.toLowerCase().includes(search.toLowerCase()))
    .sort((a, b) => a.type.localeCompare(b.type)), [session.catalog, search]);
  const info = chosen ? session.catalog.get(chosen) : undefined;
  return (
    <main className="page split">
      <div>
        <h1>Node catalog</h1>
        <input type="search" aria-label="search node types" placeholder="search types and descriptions" value={search}
          onChange={(event) => setSearch(event.target.value)} />
        <ul className="catalog" aria-label="node types">
          {types.map((type) => (
            <li key={type.type}><button type="button" className={`link${chosen === type.type ? " current" : ""}`} onClick={() => setChosen(type.type)}>
              <code>{type.type}</code></button> <span className="muted">{type.description.split(". ")[0]}</span></li>
          ))}
        </ul>
      </div>
      <section className="inspector" aria-label="inspector">
        {info ? <><h3><code>{info.type}</code></h3><TypeDetails info={info} /></> : <p className="muted">Choose a node type.</p>}
      </section>
    </main>
  );
}

export function DraftPage({ canEdit }: { session: Session; canEdit: boolean }) {
  const [text, setText] = useState("");
  const [repairs, setRepairs] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [refusal, setRefusal] = useState<DraftResponse["refusal"]>(null);
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true); setError(null); setRefusal(null);
    try {
      const draft = await request<DraftResponse>("POST", "/v1/drafts",
        repairs === "" ? { text } : { text, max_repairs: Number(repairs) });
      if (!draft.ok || !draft.graph) { setRefusal(draft.refusal); return; }
      const saved = await request<GraphInfo>("POST", "/v1/graphs", { graph: draft.graph, tags: ["drafted"] });
      go(`/graphs/${saved.id}`);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="page">
      <h1>Describe a workflow</h1>
      <form onSubmit={submit} aria-label="describe a workflow" className="stack">
        <label htmlFor="draft-text">What should the workflow do?</label>
        <textarea id="draft-text" rows={4} value={text} onChange={(event) => setText(event.target.value)}
          placeholder="Write a short tagline for a product and make a title card of it" />
        <label htmlFor="draft-repairs">Repair rounds (0–5; fewer is faster, empty: the server's default)</label>
        <select id="draft-repairs" value={repairs} onChange={(event) => setRepairs(event.target.value)}>
          <option value="">server default</option>
          {[0, 1, 2, 3, 4, 5].map((count) => <option key={count} value={String(count)}>{count}</option>)}
        </select>
        <button type="submit" disabled={!canEdit || busy || !text.trim()}>{busy ? "Drafting… (the server's LLM writes it)" : "Draft the graph"}</button>
      </form>
      <ErrorNote error={error} />
      {refusal && <div className="problem" role="alert"><p>The drafter declined: {refusal.message}</p>
        {refusal.unmet.length > 0 && <ul>{refusal.unmet.map((item) => <li key={item}>{item}</li>)}</ul>}</div>}
      <p className="muted">The drafted graph is validated by the server, saved with the tag <code>drafted</code> and opened on the canvas.</p>
    </main>
  );
}
