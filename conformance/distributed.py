"""Running a check's shards on a Dask cluster: ``convspec check BACKEND --dask ADDRESS``.

The plan is split into N shards (``--dask-tasks N``, by default one per worker
thread of the cluster) exactly as ``--shard K/N`` splits it; each shard is one
Dask task that loads the backend on its Dask worker and runs it there with the
same worker isolation as ``convspec check`` (each task starts its own backend
worker process, so a crash or hang is a finding, not a lost Dask worker). The
tasks send back their JSON reports and the client merges them
(:mod:`conformance.merge`): the result is the report an unsharded run would
give for the same seed.

The backend must be importable on the Dask workers under the same name, and
``--database DIR`` must be a directory they can all reach (a shared file
system) for failing examples to be kept. Needs ``pip install 'convspec[dask]'``.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path
from typing import Any

from conformance.database import default_directory, open_database
from conformance.loader import Target
from conformance.merge import merge, report_from_dict
from conformance.results import RunReport
from conformance.runner import open_backend, run
from conformance.shard import Shard

#: Seconds to wait for the scheduler to answer.
CONNECT_TIMEOUT = 20.0
#: The ``convspec check`` options a task needs, passed to it as plain data.
_OPTIONS = ("ops", "dtypes", "profile", "seed", "fail_fast", "isolation", "timeout", "memory_limit", "import_timeout")


class DaskError(Exception):
    """Dask is not installed or the scheduler cannot be reached; the message is one line."""


def run_shard(name: str, options: dict[str, Any], shard: str, database: str | None) -> dict[str, Any]:
    """One Dask task: shard ``shard`` of the run ``options`` describe, as its JSON report data."""
    from conformance.report import to_dict

    args = argparse.Namespace(**options)
    backend, caller, _ = open_backend(name, args)  # imported only in its worker process, as by convspec check
    report = run(backend, ops=args.ops, dtypes=args.dtypes, profile=args.profile, seed=args.seed,
                 fail_fast=args.fail_fast, caller=caller, shard=Shard.parse(shard), database=open_database(database))
    return to_dict(report)


def run_on_dask(backend: Target, args: argparse.Namespace) -> RunReport:
    """Run every shard of the check ``args`` describes on the cluster at ``args.dask`` and merge them."""
    try:
        dask: Any = importlib.import_module("distributed")  # an optional extra, used untyped
    except ImportError:
        raise DaskError("--dask needs Dask's distributed scheduler: pip install 'convspec[dask]'") from None
    try:
        client = dask.Client(args.dask, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise DaskError(f"--dask {args.dask!r}: cannot reach the scheduler ({type(exc).__name__}: {exc})") from None
    database = None if args.no_database else str(Path(args.database or default_directory()).resolve())
    try:
        count = int(args.dask_tasks or max(1, sum(client.nthreads().values())))
        options = {key: getattr(args, key) for key in _OPTIONS if hasattr(args, key)}
        print(f"convspec check {backend.name} ({backend.spec}): profile {args.profile}, seed {args.seed}, "
              f"ops {','.join(args.ops)}, dtypes {','.join(args.dtypes)}; {count} shards on the Dask cluster at "
              f"{args.dask}, each in a worker process", flush=True)
        start = time.perf_counter()
        futures = [client.submit(run_shard, backend.name, options, str(Shard(k, count)), database, pure=False,
                                 key=f"convspec-shard-{k}-of-{count}-{time.time_ns()}") for k in range(1, count + 1)]
        reports = []
        for done, future in enumerate(dask.as_completed(futures), start=1):
            try:
                report = report_from_dict(future.result())
            except Exception as exc:  # a task that failed on the cluster: one line, not a remote traceback
                raise DaskError(f"a shard failed on the Dask cluster: {type(exc).__name__}: {exc}") from exc
            failed = len(report.failures)
            print(f"[{done:>3}/{count}] shard {report.shard}: {len(report.results)} items, {failed} failed "
                  f"({report.seconds:.1f} s, {time.perf_counter() - start:.1f} s elapsed)", flush=True)
            reports.append(report)
    finally:
        client.close()
    return merge(reports)


__all__ = ["DaskError", "run_on_dask", "run_shard"]
