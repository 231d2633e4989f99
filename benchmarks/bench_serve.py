"""Benchmark: writers and readers on one served catalog (``srash serve``) as the load grows.

Starts ``srash serve`` on 127.0.0.1 (a free port) over a fresh catalog: a new PostgreSQL
database on 127.0.0.1:5432 (``--backend postgresql``, the default; created and dropped
here) or the embedded SQLite of a temporary data directory (``--backend sqlite``). Then,
for each load in ``--writers`` (default 1, 2, 4), that many writer processes scan at the
same time, each ``--runs`` mosaics of ``--grid`` tiles (2 frames per tile, ``--pixels`` px)
on the simulated microscope through the session's real path (detector files -> run journal
-> TiledWriter -> server), while one reader process searches the catalog in a loop and
reads one stored run's documents. Loops are bounded (runs x tiles; the reader stops with
the writers); every socket is on 127.0.0.1.

Measured:

- per-frame write latency: time spent in the catalog writer (``TiledWriter``, all its HTTP
  requests) per run, divided by the run's frames (the stop document's flush included:
  the writer batches events until then; docs/benchmarks.md), median and p90 over runs;
- the stop flush alone (ms per run), and the writers' frames per second together (over
  the window from the first run's start to the last run's end; start-up excluded);
- search latency: one ``srash catalog search``-style query (two criteria) with the first
  result's metadata, median and p90 over the reader's loop; and ``run.documents()``.

    .venv/bin/python benchmarks/bench_serve.py [--backend sqlite] [--writers 1,2,4]
        [--runs 3] [--grid 2x2] [--pixels 64] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PG = "postgresql://postgres@127.0.0.1:5432"


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SRASH_", "TILED_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


# ---------------------------------------------------------------------------- worker roles
def writer(url: str, data_dir: str, sample: str, runs: int, grid: str, pixels: int) -> None:
    """One instrument session: ``runs`` mosaics; one JSON line per run on stdout."""
    from srash_ophyd.cli.options import parse_grid
    from srash_ophyd.session import make_session

    rows, cols = parse_grid(grid)
    s = make_session(data_dir=data_dir, catalog_uri=url, api_key=os.environ["BENCH_KEY"],
                     progress=False, pixels=pixels, fov_um=60.0,
                     seed=sum(sample.encode()) % 1000)
    inner = s.journal.writer
    spent = {"total": 0.0, "stop": 0.0}

    def timed(name: str, doc: dict):
        t0 = time.perf_counter()
        try:
            return inner(name, doc)
        finally:
            dt = time.perf_counter() - t0
            spent["total"] += dt
            if name == "stop":
                spent["stop"] += dt

    s.journal.writer = timed
    try:
        for k in range(runs):
            spent.update(total=0.0, stop=0.0)
            t0, started = time.perf_counter(), time.time()
            out = s.run(s.plans.mosaic([s.mic], s.mic.raman, s.mic.xyz.x, s.mic.xyz.y,
                                       rows=rows, cols=cols, fov_um=60.0,
                                       md=s.run_md(sample_id=sample, bench_run=k)))
            wall = time.perf_counter() - t0
            frames = rows * cols * 2
            print(json.dumps({"code": out.code, "message": out.message, "frames": frames,
                              "write_s": spent["total"], "stop_s": spent["stop"],
                              "wall_s": wall, "t0": started, "t1": time.time()}),
                  flush=True)
    finally:
        s.close()


def reader(url: str, stop_file: str, max_queries: int) -> None:
    """Search in a loop (bounded) until ``stop_file`` exists; one JSON line at the end."""
    from srash_ophyd.catalog import close_catalog, open_catalog, search_runs

    client = open_catalog(uri=url, api_key=os.environ["BENCH_KEY"])
    search, docs = [], []
    try:
        while not os.path.exists(stop_file) and len(search) < max_queries:
            t0 = time.perf_counter()
            results = search_runs(client, plan="mosaic", diagnosis="normal")
            n = len(results)
            if n:
                first = results.values().first()
                _ = first.metadata["start"]["uid"]
            search.append(time.perf_counter() - t0)
            if n and len(docs) < len(search) // 10 + 1 and first.metadata.get("stop"):
                t0 = time.perf_counter()
                sum(1 for _ in first.documents())
                docs.append(time.perf_counter() - t0)
            time.sleep(0.05)
    finally:
        close_catalog(client)
    print(json.dumps({"search_s": search, "documents_s": docs}), flush=True)


# ---------------------------------------------------------------------------- the driver
async def _admin(sql: str) -> None:
    import asyncpg

    con = await asyncpg.connect(f"{PG}/postgres", timeout=5)
    try:
        await con.execute(sql)
    finally:
        await con.close()


def _spawn(args: list[str], key: str, log) -> subprocess.Popen:
    env = _env()
    env["BENCH_KEY"] = key
    return subprocess.Popen([sys.executable, __file__, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=log, text=True)


def _serve(tmp: Path, data_dir: Path, database: str | None, wkey: str, rkey: str):
    env = _env()
    env.update(SRASH_SERVE_API_KEY=wkey, SRASH_SERVE_READ_KEYS=rkey)
    args = [sys.executable, "-m", "srash_ophyd.cli", "serve", "--data-dir", str(data_dir),
            "--port", "0", "--host", "127.0.0.1", "--json"]
    if database:
        args += ["--database", database]
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log,
                            text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise SystemExit(f"srash serve did not start: {(tmp / 'serve.log').read_text()}")
    return proc, json.loads(line)["url"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--writers", default="1,2,4", help="loads, comma-separated")
    ap.add_argument("--runs", type=int, default=3, help="mosaics per writer and load")
    ap.add_argument("--grid", default="2x2")
    ap.add_argument("--pixels", type=int, default=64)
    ap.add_argument("--max-queries", type=int, default=2000, help="reader bound per load")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--role", choices=("writer", "reader"), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    ap.add_argument("--sample", help=argparse.SUPPRESS)
    ap.add_argument("--stop-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "writer":
        return writer(args.url, args.data_dir, args.sample, args.runs, args.grid, args.pixels)
    if args.role == "reader":
        return reader(args.url, args.stop_file, args.max_queries)

    loads = [int(w) for w in args.writers.split(",")]
    wkey, rkey = secrets.token_hex(32), secrets.token_hex(32)
    name = f"srash_bench_{uuid.uuid4().hex[:10]}"
    database = f"{PG}/{name}" if args.backend == "postgresql" else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmpdir:
        tmp = Path(tmpdir)
        data = tmp / "data"
        if database:
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
            subprocess.run([sys.executable, "-m", "srash_ophyd.cli", "catalog", "init",
                            "--database", database], cwd=REPO, env=_env(), check=True)
        server, url = _serve(tmp, data, database, wkey, rkey)
        log = open(tmp / "workers.log", "w")
        try:
            for load in loads:
                stop = tmp / f"stop-{load}"
                rd = _spawn(["--role", "reader", "--url", url, "--stop-file", str(stop),
                             "--max-queries", str(args.max_queries)], rkey, log)
                t0 = time.perf_counter()
                ws = [_spawn(["--role", "writer", "--url", url, "--data-dir", str(data),
                              "--sample", f"B-{load}-{i}", "--runs", str(args.runs),
                              "--grid", args.grid, "--pixels", str(args.pixels)], wkey, log)
                      for i in range(load)]
                runs = [json.loads(line) for w in ws for line in w.communicate()[0].split("\n")
                        if line.strip()]
                wall = time.perf_counter() - t0
                stop.touch()
                rd_out = json.loads(rd.communicate()[0].strip().splitlines()[-1])
                bad = [r for r in runs if r["code"]]
                if bad or len(runs) != load * args.runs:
                    raise SystemExit(f"writers failed: {bad or runs}; log {tmp}/workers.log")
                per_frame = [r["write_s"] / r["frames"] for r in runs]
                frames = sum(r["frames"] for r in runs)
                # throughput over the acquisition window (the writers' start-up excluded)
                window = max(r["t1"] for r in runs) - min(r["t0"] for r in runs)
                search = rd_out["search_s"]
                rows.append({
                    "writers": load, "runs": len(runs), "frames": frames,
                    "write_ms_per_frame_median": 1e3 * statistics.median(per_frame),
                    "write_ms_per_frame_p90": 1e3 * _pct(per_frame, 0.9),
                    "stop_flush_ms_median": 1e3 * statistics.median(r["stop_s"] for r in runs),
                    "frames_per_s": frames / window, "searches": len(search),
                    "wall_s": wall,
                    "search_ms_median": 1e3 * statistics.median(search) if search else None,
                    "search_ms_p90": 1e3 * _pct(search, 0.9) if search else None,
                    "documents_ms_median": (1e3 * statistics.median(rd_out["documents_s"])
                                            if rd_out["documents_s"] else None)})
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
            if database:
                asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    if args.json:
        print(json.dumps({"backend": args.backend, "grid": args.grid, "pixels": args.pixels,
                          "rows": rows}))
        return
    print(f"backend {args.backend}, {args.runs} runs of {args.grid} tiles x 2 frames "
          f"({args.pixels} px) per writer")
    print("writers  frames  write ms/frame med (p90)  stop flush ms  frames/s  "
          "searches  search ms med (p90)  documents ms")
    for r in rows:
        docs = r["documents_ms_median"]
        print(f"{r['writers']:>7}  {r['frames']:>6}  {r['write_ms_per_frame_median']:>11.1f} "
              f"({r['write_ms_per_frame_p90']:.1f})  {r['stop_flush_ms_median']:>13.0f}  "
              f"{r['frames_per_s']:>8.2f}  {r['searches']:>8}  "
              f"{r['search_ms_median']:>10.1f} ({r['search_ms_p90']:.1f})  "
              f"{docs if docs is None else round(docs):>12}")


if __name__ == "__main__":
    main()
