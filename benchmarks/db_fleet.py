"""64 simulated workers against one PostgreSQL with max_connections 100: direct vs PgBouncer.

A throw-away PostgreSQL 15 cluster (``initdb`` in a temporary directory, SCRAM over TCP,
``max_connections=100``: the machine's shared server is not touched) holds one study. For
each topology, ``--workers`` forked processes each open the storage as a worker does
(:func:`hpo.storage.open_storage` with a heartbeat, the study lock of
:func:`hpo.storage.open_study_lock`) and, until ``--seconds`` have passed, repeat a worker's
round: take the lock, fail stale trials, count the trials, ask for a trial (two sampled
params), release the lock once it is RUNNING, "train" ``--train-s`` seconds inside
``study.optimize`` (Optuna's heartbeat thread runs; one report per 0.5 s) and finish it.

Topologies: ``direct`` (every worker connects to PostgreSQL) and ``pgbouncer`` (PgBouncer in
transaction pooling mode with ``--pool-size`` server connections, ``REID_HPO_POOL_MODE=
transaction``). Measured, sampling every 0.2 s: established client TCP connections to the
endpoint per worker (``ss``), the peak of server connections to the study's database
(``pg_stat_activity``), connections the server refused ("too many clients" in its log), the
retries the workers logged, finished trials per second, and the longest lock wait.

Usage: ``python benchmarks/db_fleet.py [--workers 64] [--seconds 60] [--train-s 2]
[--pool-size 10] [--out FILE.json]`` from the repository root (root: the cluster and
PgBouncer run as the ``postgres`` OS user). BENCHMARKS.md, "A database that holds a fleet".
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna
import psycopg2

from hpo.storage import Heartbeat
from hpo.storage import close_storage
from hpo.storage import open_storage
from hpo.storage import open_study_lock
from tests._helpers.pgbouncer import PgBouncer
from tests.reliability._private_pg import PrivatePostgres

STUDY = "fleet"
HEARTBEAT = Heartbeat(interval=1, grace=10)


class _Retries(logging.Handler):
    """Counts the "database unreachable ... retrying" warnings of hpo.storage."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "unreachable" in record.getMessage()


def _worker(
    url: str, mode: str, start_at: float, stop_at: float, out: multiprocessing.Queue
) -> None:
    os.environ["REID_HPO_POOL_MODE"] = mode
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    retries = _Retries()
    logging.getLogger("hpo.storage").addHandler(retries)
    time.sleep(max(0.0, start_at - time.time()))
    done, waits, error = 0, [], ""
    try:
        storage = open_storage(url, heartbeat=HEARTBEAT, role="reid-hpo-bench")
        lock = open_study_lock(storage, STUDY)
        study = optuna.load_study(
            study_name=STUDY, storage=storage, sampler=optuna.samplers.RandomSampler()
        )
        while time.time() < stop_at:
            begin = time.monotonic()
            lock.acquire()
            waits.append(time.monotonic() - begin)
            optuna.storages.fail_stale_trials(study)
            len(study.get_trials(deepcopy=False))  # the budget count

            def train(trial: optuna.Trial) -> float:
                x = trial.suggest_float("x", 0.0, 1.0)
                trial.suggest_float("y", 1e-3, 1.0, log=True)
                lock.release()
                for step in range(max(1, round(TRAIN_S / 0.5))):
                    time.sleep(0.5)
                    trial.report(x * step, step)
                return x

            try:
                study.optimize(train, n_trials=1)
            finally:
                lock.release()
            done += 1
        lock.close()
        close_storage(storage)
    except Exception as exc:  # reported, counted: the benchmark measures failures too
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    out.put(
        {
            "trials": done,
            "retries": retries.count,
            "max_wait_s": max(waits, default=0.0),
            "error": error,
        }
    )


def _endpoint_connections(port: int, pids: set[int]) -> int:
    """Established TCP connections from the processes ``pids`` to 127.0.0.1:port."""
    text = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(int(pid) in pids for pid in re.findall(r"pid=(\d+)", text))


def _server_connections(admin: psycopg2.extensions.connection, database: str) -> int:
    with admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,))
        return int(cur.fetchone()[0])


def run_topology(pg: PrivatePostgres, topology: str, args: argparse.Namespace) -> dict:
    """One timed run of ``args.workers`` simulated workers through ``topology``."""
    url = pg.database()
    database = url.rsplit("/", 1)[1]
    storage = open_storage(url)
    optuna.create_study(study_name=STUDY, storage=storage)
    close_storage(storage)
    bouncer, bouncer_log = None, ""
    if topology == "pgbouncer":
        bouncer = PgBouncer(pg.port, password=pg.password, pool_size=args.pool_size)
        bouncer.start()
        url, port, mode = bouncer.url(database, pg.password), bouncer.port, "transaction"
    else:
        port, mode = pg.port, "session"
    refused_before = pg.log.read_text().count("too many clients")
    start_at = time.time() + 2.0
    stop_at = start_at + args.seconds
    queue: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
    context = multiprocessing.get_context("fork")
    procs = [
        context.Process(target=_worker, args=(url, mode, start_at, stop_at, queue))
        for _ in range(args.workers)
    ]
    for proc in procs:
        proc.start()
    admin = psycopg2.connect(
        host="127.0.0.1", port=pg.port, user="postgres", password=pg.password, dbname="postgres"
    )
    admin.autocommit = True
    pids = {proc.pid for proc in procs}
    peak_server, client_samples, server_samples = 0, [], []
    try:
        while time.time() < stop_at + args.train_s + 5 and any(p.is_alive() for p in procs):
            peak_server = max(peak_server, _server_connections(admin, database))
            if start_at + 5 < time.time() < stop_at:
                client_samples.append(_endpoint_connections(port, pids))
                server_samples.append(_server_connections(admin, database))
            time.sleep(0.2)
        results = [queue.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
    finally:
        admin.close()
        if bouncer is not None:
            bouncer_log = bouncer.log.read_text()
            bouncer.stop()
    trials = sum(r["trials"] for r in results)
    return {
        "topology": topology,
        "workers": args.workers,
        "client_connections_per_worker_max": max(client_samples, default=0) / args.workers,
        "client_connections_per_worker_mean": round(
            sum(client_samples) / max(1, len(client_samples)) / args.workers, 2
        ),
        "peak_server_connections": peak_server,
        "server_connections_mean": round(sum(server_samples) / max(1, len(server_samples)), 1),
        "refused_by_server": pg.log.read_text().count("too many clients") - refused_before,
        "worker_retries_logged": sum(r["retries"] for r in results),
        "workers_failed": [r["error"] for r in results if r["error"]],
        "pgbouncer_errors": [
            line for line in bouncer_log.splitlines() if " WARNING " in line or " ERROR " in line
        ][:5],
        "trials_finished": trials,
        "trials_per_s": round(trials / args.seconds, 2),
        "max_lock_wait_s": round(max(r["max_wait_s"] for r in results), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--train-s", type=float, default=2.0)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--topologies", default="direct,pgbouncer")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    global TRAIN_S
    TRAIN_S = args.train_s
    pg = PrivatePostgres()
    try:
        pg.start()
        admin = psycopg2.connect(
            host="127.0.0.1", port=pg.port, user="postgres", password=pg.password, dbname="postgres"
        )
        with admin.cursor() as cur:
            cur.execute("SHOW max_connections")
            max_connections = int(cur.fetchone()[0])
        admin.close()
        rows = [run_topology(pg, t, args) for t in args.topologies.split(",")]
    finally:
        pg.destroy()
    report = {
        "max_connections": max_connections,
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(sys.argv),
        "rows": rows,
    }
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


TRAIN_S = 2.0

if __name__ == "__main__":
    main()
