// The console's screens, routed by the location hash (the key never appears in a URL).
import { useCallback, useEffect, useState } from "react";
import { ApiError, request, storedKey, storeKey, type KeyInfo, type NodeTypeInfo } from "./api";
import { CatalogPage, DraftPage, GraphList } from "./pages";
import { GraphEditor } from "./GraphEditor";
import { RunList, RunView } from "./RunView";
import type { Catalog } from "./graph";

export interface Session {
  project: string | null;
  /** null when the key may not list keys (not admin): run or read, found out on the first write */
  scopes: string[] | null;
  catalog: Catalog;
}

function useHash(): string {
  const [hash, setHash] = useState(window.location.hash || "#/graphs");
  useEffect(() => {
    const update = () => setHash(window.location.hash || "#/graphs");
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return hash;
}

export function go(path: string): void {
  window.location.hash = path;
}

/** Check a key against the API: the catalog needs `read`; the project's name comes from /v1/keys (admin keys). */
async function signIn(key: string): Promise<Session> {
  const catalog = await request<{ nodes: NodeTypeInfo[] }>("GET", "/v1/nodes", undefined, key);
  await request("GET", "/v1/graphs?limit=1", undefined, key);
  let project: string | null = null;
  let scopes: string[] | null = null;
  try {
    const keys = await request<KeyInfo[]>("GET", "/v1/keys", undefined, key);
    const mine = keys.find((info) => key.replace(/^nl_/, "").startsWith(info.prefix)) ?? keys[0];
    project = mine?.project ?? null;
    scopes = mine?.scopes ?? ["admin"];
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 403) throw error;
  }
  return { project, scopes, catalog: new Map(catalog.nodes.map((info) => [info.type, info])) };
}

function SignIn({ onSignedIn, initialError }: { onSignedIn: (session: Session) => void; initialError: string | null }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(initialError);
  const [busy, setBusy] = useState(false);
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await signIn(key.trim());
      storeKey(key.trim());
      onSignedIn(session);
    } catch (failure) {
      setError(describeSignIn(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="signin">
      <h1>nodeloom console</h1>
      <form onSubmit={submit} aria-label="sign in">
        <label htmlFor="api-key">API key</label>
        <input id="api-key" type="password" autoComplete="off" value={key} onChange={(event) => setKey(event.target.value)}
          aria-describedby="key-help" required />
        <p id="key-help" className="muted">Made by <code>nodeloom keys create --project NAME --scopes run</code>. Kept in this tab's
          session storage only.</p>
        <button type="submit" disabled={busy || !key.trim()}>{busy ? "Checking…" : "Sign in"}</button>
      </form>
      {error && <div className="error-page" role="alert"><h2>Cannot sign in</h2><p>{error}</p></div>}
    </main>
  );
}

function describeSignIn(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 401) return `This key is not valid: ${error.message}. Check it was copied whole and has not been revoked.`;
    if (error.status === 403) return `This key cannot use the console: ${error.message}. The console needs at least the read scope.`;
    return `The server answered ${error.status}: ${error.message}`;
  }
  return `The server could not be reached: ${String(error)}`;
}

export function App() {
  const hash = useHash();
  const [session, setSession] = useState<Session | null>(null);
  const [restoring, setRestoring] = useState(storedKey() !== null);
  const [restoreError, setRestoreError] = useState<string | null>(null);
  useEffect(() => {
    const key = storedKey();
    if (!key) return;
    signIn(key).then(setSession).catch((error) => { storeKey(null); setRestoreError(describeSignIn(error)); })
      .finally(() => setRestoring(false));
  }, []);
  const signOut = useCallback(() => { storeKey(null); setSession(null); }, []);
  if (restoring) return <main className="signin"><p>Signing in…</p></main>;
  if (!session) return <SignIn onSignedIn={setSession} initialError={restoreError} />;
  const [path, search] = hash.replace(/^#/, "").split("?");
  const [, section, id] = path.split("/");
  const query = new URLSearchParams(search ?? "");
  const canRun = session.scopes === null || session.scopes.some((scope) => scope === "run" || scope === "admin");
  let page;
  if (section === "graphs" && id) page = <GraphEditor key={id} graphId={id} session={session} canEdit={canRun} />;
  else if (section === "draft") page = <DraftPage session={session} canEdit={canRun} />;
  else if (section === "runs" && id) page = <RunView key={id} runId={id} session={session} canRun={canRun} />;
  else if (section === "runs") page = <RunList key={search ?? ""} graphId={query.get("graph")} status={query.get("status")} />;
  else if (section === "catalog") page = <CatalogPage session={session} />;
  else page = <GraphList canEdit={canRun} />;
  return (
    <div className="shell">
      <header>
        <a className="brand" href="#/graphs">nodeloom</a>
        <nav aria-label="sections">
          <a href="#/graphs" aria-current={section === "graphs" ? "page" : undefined}>Graphs</a>
          <a href="#/runs" aria-current={section === "runs" ? "page" : undefined}>Runs</a>
          <a href="#/catalog" aria-current={section === "catalog" ? "page" : undefined}>Catalog</a>
          {canRun && <a href="#/draft" aria-current={section === "draft" ? "page" : undefined}>Describe a workflow</a>}
        </nav>
        <span className="project" aria-label="project">{session.project ? `project ${session.project}` : "project (visible to admin keys)"}
          {session.scopes ? ` · ${session.scopes.join(", ")}` : ""}</span>
        <button type="button" className="small" onClick={signOut}>Sign out</button>
      </header>
      {page}
    </div>
  );
}
