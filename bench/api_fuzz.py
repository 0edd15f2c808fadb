"""Fuzz the REST API with schemathesis under an admin key: no 500, no undocumented status code.

Starts `nodeloom serve` (its default worker-process pool, SQLite in a temporary folder) on
127.0.0.1, creates an admin key with `nodeloom keys create`, and runs schemathesis over every
operation of `/openapi.json` (but `POST /v1/drafts`, whose every valid request runs the
embedded LLM for 10-30 s) with three checks: `not_a_server_error` (no 5xx),
`status_code_conformance` (every status is one the operation documents) and
`response_schema_conformance` (every body matches its documented schema). Prints the case
counts schemathesis reports and exits with its status.

Usage: python bench/api_fuzz.py [--max-examples 200] [--seed 1] [--workers 2]
(`--max-examples` is per operation and phase; 200 gives about 5 000+ cases.)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_load import start_server

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"


def admin_key(home: Path, db_url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "nodeloom.cli", "keys", "create", "--project", "fuzz", "--scopes", "admin",
         "--db-url", db_url],
        env={**os.environ, "NODELOOM_HOME": str(home)}, capture_output=True, text=True, check=True, timeout=120,
    )
    return done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=200, help="examples per operation and phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="schemathesis's concurrent workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nodeloom-fuzz-") as folder:
        home = Path(folder)
        db_url = f"sqlite:///{home / 'api.db'}"
        server, url = start_server(home, db_url)
        try:
            key = admin_key(home, db_url)
            command = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json",
                       "--checks", CHECKS, "--max-examples", str(args.max_examples),
                       "--phases", "examples,coverage,fuzzing", "--generation-database", "none",
                       "--request-timeout", "20", "--seed", str(args.seed), "--workers", str(args.workers),
                       "--header", f"Authorization: Bearer {key}", "--exclude-path", "/v1/drafts",
                       "--continue-on-failure", "--suppress-health-check", "all"]
            started = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True, cwd=home)
            seconds = time.monotonic() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
        output = done.stdout + done.stderr
        print(output[-6000:])
        cases = re.search(r"Test cases:\s*(.+)", output)
        print(f"schemathesis exit {done.returncode} in {seconds:.0f} s; checks {CHECKS}; "
              f"max-examples {args.max_examples} per operation and phase; seed {args.seed}")
        print(f"test cases: {cases.group(1) if cases else 'not reported'}")
        if done.returncode != 0:
            print("server log (tail):", (home / "server.log").read_text()[-3000:] if (home / "server.log").exists()
                  else "none")
        return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
