"""Regressions (`make regress`): model runs, chunks of random programs and mutants as
independent jobs, on a local process pool or on a Dask distributed scheduler given by
address, merged into one report (JUnit XML, markdown, JSON).

A job is a small serialisable description: its kind (model | fuzz | mutant), a name
that is stable for the same work, its parameters and a timeout. `run_job` is a plain
top-level function of that description, so a pool worker and a Dask worker run the same
code: it runs the real thing in subprocesses of its own, each in a directory of its own
under the output directory (OUT/<kind>/<name>/), and returns a result record: name,
kind, status, seconds, the host and worker it ran on, a one-line message, the command
that reruns it, the tail of its log and the small content of its report. The record
carries what the merged report needs, because a worker on another machine need not
share this one's filesystem: logs, reports and saved cases stay on the worker's disk.

Statuses: pass, fail (the design or the tests are wrong: a layer outside tolerance, a
random program that diverges, a mutant that survived), error (the job could not reach a
verdict: a crash, a timeout, a worker that died, bad options) and skip (mutants only: a
mutant that does not build, or a survivor claimed equivalent in
verif/mutate_equivalent.yaml; neither says anything about the tests). A mutant job
passes when the mutant is killed, the usual convention of mutation regressions: the job
checks that the tests find that bug. The exit status is 1 when any job failed or
erred.

    python -m verif.regress list [suite options]
    python -m verif.regress run [--scheduler tcp://host:port] [--jobs J] [--out DIR]
                                [suite options]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from verif import mutate

ROOT = mutate.ROOT
DEFAULT_OUT = Path("build/regress")  # relative paths are taken from the repository root
KINDS = ("model", "fuzz", "mutant")
STATUSES = ("pass", "fail", "error", "skip")
DEFAULT_BACKENDS = ("ref", "verilator")
DEFAULT_FUZZ_SEEDS = "0-3"
DEFAULT_FUZZ_PROGRAMS = 500  # per seed
DEFAULT_FUZZ_CHUNK = 100  # programs per job
DEFAULT_MUTANTS = 4
DEFAULT_TIMEOUT = 1800.0  # seconds per job (a mutant: per step, see mutant_job)
# Times a job is run again after its local pool worker died; one more death and it is an
# error (the default of Dask's distributed.scheduler.allowed-failures).
ALLOWED_WORKER_DEATHS = 3
LOG_TAIL_LINES = 40
LOG_TAIL_CHARS = 6000


# ------------------------------------------------------------------ jobs
@dataclass
class Job:
    """One unit of a regression, as it travels to a worker (to_dict / from_dict)."""

    kind: str  # model | fuzz | mutant
    name: str  # stable for the same work; unique within a suite of its kind
    params: dict = field(default_factory=dict)  # JSON values only
    timeout: float = DEFAULT_TIMEOUT

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Job:
        return cls(d["kind"], d["name"], dict(d.get("params", {})), float(d["timeout"]))


def model_job(
    model: str,
    backend: str,
    tokens: int = 8,
    seed: int = 0,
    layers: int | None = None,
    hw: str | None = None,
    fault: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Job:
    """`python -m sim MODEL --backend B`: every layer checked against PyTorch (and on the
    RTL every instruction against the ISA model)."""
    name = f"{model}@{backend}" + (f"+{fault}" if fault else "")
    params = dict(
        model=model, backend=backend, tokens=tokens, seed=seed, layers=layers, hw=hw, fault=fault
    )
    return Job("model", name, params, timeout)


def fuzz_job(
    seed: int,
    first: int,
    programs: int,
    hw: str | None = None,
    fault: str | None = None,
    shrink: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> Job:
    """Cases first .. first + programs - 1 of a seed: `python -m verif fuzz`, stopping at
    the first failing case (shrunk and saved unless shrink is off)."""
    name = f"seed{seed}-cases{first}-{first + programs - 1}" + (f"+{fault}" if fault else "")
    params = dict(seed=seed, first=first, programs=programs, hw=hw, fault=fault, shrink=shrink)
    return Job("fuzz", name, params, timeout)


def mutant_job(
    m: mutate.Mutant,
    fuzz_seed: int = 0,
    fuzz_programs: int = 150,
    tests: bool = True,
    timeout: float = 600.0,
) -> Job:
    """One mutant through verif.mutate.run_mutant (build, random programs, directed
    tests). The timeout bounds each of those steps, as `make mutate`'s does."""
    params = dict(mutant=m.record(), fuzz_seed=fuzz_seed, fuzz_programs=fuzz_programs, tests=tests)
    return Job("mutant", m.id, params, timeout)


def _resolve(out: str | Path) -> Path:
    out = Path(out)
    return out if out.is_absolute() else ROOT / out


def _worker_name() -> str:
    """The Dask worker's address when a Dask worker runs the job, else the process id."""
    if "distributed" in sys.modules:
        from distributed import get_worker

        try:
            return get_worker().address
        except ValueError:  # not inside a Dask worker
            pass
    return f"pid {os.getpid()}"


def _xml_safe(text: str) -> str:
    """XML 1.0 cannot hold most control characters (a colour escape in a log)."""
    return re.sub("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "?", text)


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _subprocess_problem(rc: int | None, timeout: float, log: Path) -> str:
    """Why a job's subprocess gave no verdict."""
    if rc is None:
        return f"timed out after {timeout:g} s (killed with its process group)"
    if rc < 0:
        return f"killed by signal {-rc}"
    return f"exit status {rc}: {mutate._tail(log) or '(no output)'}"


def _run_command(
    cmd: list[str], flags: dict[str, object], job: Job, out: Path, record: dict
) -> tuple[int | None, Path]:
    """Run a job's command with its optional flags (those not None) under the job's
    timeout, logging to OUT/job.log; records the command and the log's tail. Returns
    the exit status (None: timed out) and the log."""
    cmd = cmd + [x for flag, v in flags.items() if v is not None for x in (flag, str(v))]
    record["command"] = shlex.join(cmd)
    log = out / "job.log"
    rc, _ = mutate._run(cmd, dict(os.environ), job.timeout, log)
    record["log_tail"] = mutate._tail(log, LOG_TAIL_LINES)
    return rc, log


def _run_model(job: Job, out: Path, record: dict) -> None:
    p = job.params
    cmd = [
        sys.executable,
        "-m",
        "sim",
        p["model"],
        "--backend",
        p["backend"],
        "--tokens",
        str(p["tokens"]),
        "--seed",
        str(p["seed"]),
        "--out",
        str(out),
    ]
    flags = {"--layers": p.get("layers"), "--hw": p.get("hw"), "--fault": p.get("fault")}
    rc, log = _run_command(cmd, flags, job, out, record)
    report_file = out / "report.json"
    rep = json.loads(report_file.read_text()) if report_file.exists() else None
    if rep is not None:
        failed = [
            {k: r.get(k) for k in ("id", "path", "status", "reason")}
            for r in rep.get("layers", [])
            if r.get("status") != "pass"
        ]
        record["report"] = {"summary": rep["summary"], "failed_layers": failed}
    summary = rep["summary"] if rep else {}
    if rc == 0 and summary.get("passed"):
        cycles = f", {summary['cycles']:,} cycles" if "cycles" in summary else ""
        record.update(status="pass", message=f"{summary['layers_checked']} checkpoints{cycles}")
    elif rc == 1 and rep is not None:  # sim's verdict: a failure with its report
        record.update(status="fail", message=_model_failure(summary, record["report"]))
    else:  # options refused (2), a crash before the report, a timeout
        record.update(status="error", message=_subprocess_problem(rc, job.timeout, log))


def _model_failure(summary: dict, report: dict) -> str:
    if summary.get("error"):
        what = _first_line(summary["error"])
    elif report["failed_layers"]:
        first = report["failed_layers"][0]
        what = (
            f"{len(report['failed_layers'])} checkpoints failed, first {first['id']}"
            f" {first['path']}: {first.get('reason') or 'outside tolerance'}"
        )
    else:
        wrong = [o for o in summary.get("outputs_vs_eager", []) if o.get("status") != "pass"]
        what = "outputs differ from the eager model" if wrong else "the DRAM image differs"
    return what + (f"; rerun: {summary['rerun']}" if summary.get("rerun") else "")


def _run_fuzz(job: Job, out: Path, record: dict) -> None:
    p = job.params
    cmd = [
        sys.executable,
        "-m",
        "verif",
        "fuzz",
        "--seed",
        str(p["seed"]),
        "-n",
        str(p["programs"]),
        "--first",
        str(p["first"]),
        "--max-failures",
        "1",
        "--out",
        str(out),
    ]
    cmd += [] if p.get("shrink", True) else ["--no-shrink"]
    rc, log = _run_command(cmd, {"--hw": p.get("hw"), "--fault": p.get("fault")}, job, out, record)
    summary_file = out / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    if summary is not None:
        record["report"] = summary
    if rc == 0 and summary and not summary["failures"] and summary["programs"] == p["programs"]:
        record.update(status="pass", message=f"{summary['programs']} programs")
    elif rc == 1 and summary and summary["failures"]:
        f = summary["failed"][0]
        record.update(
            status="fail",
            message=(
                f"{f['case']}: {f['kind']} (expected {f['expected']}):"
                f" {_first_line(f['shrunk_message'] or f['message'])}; rerun: {f['rerun']}"
            ),
        )
    else:  # a crash (Python's exit status is 1 too, but without a failure in a summary)
        record.update(status="error", message=_subprocess_problem(rc, job.timeout, log))


def _run_mutant(job: Job, out: Path, record: dict) -> None:
    p = job.params
    m = mutate.Mutant.from_record(p["mutant"])
    record["command"] = f"{sys.executable} -m verif.mutate run --only {m.id}"
    r = mutate.run_mutant(
        p["mutant"],
        out_dir=out.parent,
        fuzz_seed=p["fuzz_seed"],
        fuzz_programs=p["fuzz_programs"],
        tests=p["tests"],
        timeout=job.timeout,
    )
    logs = [out / f"{step}.log" for step in ("pytest", "fuzz", "build")]
    last_log = next((log for log in logs if log.exists()), None)
    record["log_tail"] = mutate._tail(last_log, LOG_TAIL_LINES) if last_log else ""
    record["report"] = r
    change = (
        f"{m.file}:{m.line} {m.operator} `{mutate.one_line(m.original, 60)}`"
        f" -> `{mutate.one_line(m.replacement, 60)}`"
    )
    if r["status"] == "killed":
        record.update(status="pass", message=f"killed by {r['killed_by']}: {change}")
    elif r["status"] == "survived":
        claim = mutate.claim_for(r, mutate.load_claims())
        if claim:
            record.update(status="skip", message=f"survived, claimed equivalent: {claim}")
        else:
            record.update(status="fail", message=f"survived: {change}")
    elif r["status"] == "stillborn":
        record.update(status="skip", message=f"stillborn: {_first_line(r['detail'])}")
    else:
        record.update(status="error", message=_first_line(r["detail"]) or "no verdict")


RUNNERS: dict[str, Callable[[Job, Path, dict], None]] = {
    "model": _run_model,
    "fuzz": _run_fuzz,
    "mutant": _run_mutant,
}


def _record(job: Job, out: Path | None = None) -> dict:
    """A job's result record before it has a verdict: an error until it gets one."""
    return {
        "name": job.name,
        "kind": job.kind,
        "status": "error",
        "seconds": 0.0,
        "host": "",
        "worker": "",
        "message": "",
        "command": "",
        "out_dir": str(out or ""),
        "log_tail": "",
        "report": {},
        "params": job.params,
        "worker_deaths": 0,  # local pool workers that died while it was unfinished
    }


def error_record(job: Job, why: str, detail: str = "") -> dict:
    """The record of a job that came back without one of its own (its worker died, the
    scheduler lost it, the job function raised on the way out)."""
    return {**_record(job), "message": why, "log_tail": detail}


def run_job(job: dict, out_root: str = str(DEFAULT_OUT)) -> dict:
    """Run one job where this is called (a pool worker, a Dask worker) and return its
    result record. Its artifacts go to OUT/<kind>/<name>/, emptied first so that an
    earlier run's reports cannot pass for this one's."""
    j = Job.from_dict(job)
    out = _resolve(out_root) / j.kind / j.name
    record = {**_record(j, out), "host": socket.gethostname(), "worker": _worker_name()}
    t0 = time.perf_counter()
    try:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        RUNNERS[j.kind](j, out, record)
    except Exception as e:  # the job's own machinery failed: an error, never lost
        record.update(status="error", message=f"{type(e).__name__}: {_first_line(e)}")
        record["log_tail"] = (record["log_tail"] + "\n" + traceback.format_exc()).strip()
    record["seconds"] = round(time.perf_counter() - t0, 2)
    record["log_tail"] = record["log_tail"][-LOG_TAIL_CHARS:]
    return record


# ------------------------------------------------------------------ executors
def _pool_worker_init() -> None:
    """A broken pool terminates its other workers with SIGTERM: the job's subprocesses,
    in sessions of their own, would outlive the worker unless it ends them first."""

    def end_worker(signum, frame) -> None:
        for proc in list(mutate._RUNNING):  # the worker runs one job: no other thread
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, end_worker)


def run_on_pool(jobs: list[Job], out_root: str, workers: int, on_result) -> dict:
    """The jobs on a local process pool of `workers` processes. A worker that dies breaks
    the whole pool: the jobs not finished then go to a new pool, and a job that was
    unfinished at more than ALLOWED_WORKER_DEATHS such deaths becomes an error."""
    deaths: Counter = Counter()
    pending = list(jobs)
    # spawn, not fork: the caller may hold threads (a Dask client, pytest plugins), and a
    # spawned worker imports the job function by name, as a remote one does.
    context = multiprocessing.get_context("spawn")
    while pending:
        pool = ProcessPoolExecutor(workers, context, initializer=_pool_worker_init)
        try:
            futures = {pool.submit(run_job, j.to_dict(), out_root): j for j in pending}
            pending = []
            for future in as_completed(futures):
                job = futures[future]
                try:
                    record = future.result()
                except BrokenProcessPool:
                    deaths[job.id] += 1
                    if deaths[job.id] <= ALLOWED_WORKER_DEATHS:
                        pending.append(job)
                        continue
                    why = f"its pool worker died {deaths[job.id]} times while it was unfinished"
                    record = error_record(job, why)
                except Exception as e:  # the record could not come back
                    record = error_record(job, f"{type(e).__name__}: {e}", traceback.format_exc())
                if deaths[job.id] and record["status"] != "error":
                    record["message"] += f" (run again: a pool worker died {deaths[job.id]}x)"
                record["worker_deaths"] = deaths[job.id]
                on_result(record)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    return {"executor": "process pool", "address": "local", "workers": workers}


def run_on_dask(jobs: list[Job], out_root: str, address: str, on_result) -> dict:
    """The jobs on the Dask distributed scheduler at address (its workers must import
    this repository: the same checkout path, or the package installed). A worker that
    dies has its jobs rescheduled by Dask; a job that was running on
    distributed.scheduler.allowed-failures + 1 dying workers comes back as KilledWorker,
    an error."""
    from distributed import Client
    from distributed import as_completed as dask_as_completed

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(1, timeout=120)
        workers = client.scheduler_info(n_workers=-1)["workers"]
        threads = sum(w.get("nthreads", 1) for w in workers.values())
        token = uuid.uuid4().hex[:8]  # a rerun on the same cluster gets new keys
        futures = {
            client.submit(
                run_job, j.to_dict(), out_root, key=f"regress-{token}-{j.id}", pure=False
            ): j
            for j in jobs
        }
        for future in dask_as_completed(futures):
            job = futures[future]
            if future.status == "finished":
                on_result(future.result())
                continue
            try:
                exc = future.exception()
            except Exception as e:  # cancelled: there is no exception to fetch
                exc = e
            why = f"{type(exc).__name__}: {_first_line(exc)}"
            if type(exc).__name__ == "KilledWorker":
                why = f"the Dask workers running it died ({why})"
            on_result(error_record(job, why))
    return {"executor": "dask", "address": address, "workers": threads}


def run_jobs(
    jobs: list[Job],
    out_root: str | Path = DEFAULT_OUT,
    scheduler: str | None = None,
    workers: int | None = None,
    on_result: Callable[[dict], None] | None = None,
) -> tuple[list[dict], dict]:
    """Every job on the pool (scheduler None) or on the Dask scheduler; the records in
    the order they finished and what ran them (executor, address, workers, wall_s)."""
    names = Counter(j.id for j in jobs)
    if dup := [n for n, c in names.items() if c > 1]:
        raise ValueError(f"jobs with the same name: {', '.join(dup)}")
    records: list[dict] = []

    def collect(record: dict) -> None:
        records.append(record)
        if on_result:
            on_result(record)
        else:
            print(result_line(record, len(records), len(jobs)), flush=True)

    t0 = time.perf_counter()
    if scheduler:
        run = run_on_dask(jobs, str(out_root), scheduler, collect)
    else:
        run = run_on_pool(jobs, str(out_root), workers or os.cpu_count() or 1, collect)
    run["wall_s"] = round(time.perf_counter() - t0, 1)
    return records, run


def result_line(record: dict, done: int, total: int) -> str:
    return (
        f"[{done}/{total}] {record['status'].upper():<5} {record['kind']}/{record['name']}"
        f" {record['seconds']:.1f} s on {record['host'] or '?'} ({record['worker'] or '?'}):"
        f" {record['message']}"
    )


def exit_status(records: list[dict]) -> int:
    return 1 if any(r["status"] in ("fail", "error") for r in records) else 0


# ------------------------------------------------------------------ report
def _ordered(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: (KINDS.index(r["kind"]), r["name"]))


def counts(records: list[dict]) -> dict:
    out = {"jobs": len(records), **{s: sum(r["status"] == s for r in records) for s in STATUSES}}
    out["seconds"] = round(sum(r["seconds"] for r in records), 1)
    return out


def junit_xml(records: list[dict], run: dict) -> ET.ElementTree:
    """testsuites > one testsuite per kind > one testcase per job: <failure> or <error>
    with the message, <skipped>, and the tail of the job's log in <system-out>."""

    def put(el: ET.Element, **attrs) -> ET.Element:
        for k, v in attrs.items():
            el.set(k, _xml_safe(str(v)))
        return el

    total = counts(records)
    root = put(
        ET.Element("testsuites"),
        name="loom regress",
        tests=total["jobs"],
        failures=total["fail"],
        errors=total["error"],
        skipped=total["skip"],
        time=run.get("wall_s", total["seconds"]),
    )
    for kind in KINDS:
        rows = [r for r in _ordered(records) if r["kind"] == kind]
        if not rows:
            continue
        c = counts(rows)
        suite = put(
            ET.SubElement(root, "testsuite"),
            name=kind,
            tests=c["jobs"],
            failures=c["fail"],
            errors=c["error"],
            skipped=c["skip"],
            time=c["seconds"],
            timestamp=run.get("started", ""),
        )
        props = ET.SubElement(suite, "properties")
        for key in ("executor", "address", "workers"):
            put(ET.SubElement(props, "property"), name=key, value=run.get(key, ""))
        for r in rows:
            case = put(
                ET.SubElement(suite, "testcase"),
                classname=f"regress.{kind}",
                name=r["name"],
                time=r["seconds"],
            )
            if r["status"] in ("fail", "error"):
                tag = "failure" if r["status"] == "fail" else "error"
                el = put(ET.SubElement(case, tag), message=r["message"], type=r["status"])
                el.text = _xml_safe(f"{r['message']}\ncommand: {r['command']}")
            elif r["status"] == "skip":
                put(ET.SubElement(case, "skipped"), message=r["message"])
            out = ET.SubElement(case, "system-out")
            where = f"ran on {r['host']} ({r['worker']}), artifacts in {r['out_dir']}"
            out.text = _xml_safe(f"{where}\n{r['command']}\n{r['log_tail']}")
    ET.indent(root)
    return ET.ElementTree(root)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown(records: list[dict], run: dict) -> str:
    total = counts(records)
    verdict = "FAIL" if exit_status(records) else "PASS"
    out = [
        "# Loom regression",
        "",
        f"{run.get('started', '')}: {total['jobs']} jobs on {run.get('executor', '?')}"
        f" ({run.get('address', '')}, {run.get('workers', '?')} workers) in"
        f" {run.get('wall_s', 0):.0f} s wall, {total['seconds']:.0f} s of job time.",
        "",
        f"**{verdict}**: {total['pass']} passed, {total['fail']} failed, {total['error']}"
        f" errors, {total['skip']} skipped.",
        "",
        "| kind | jobs | pass | fail | error | skip | job seconds | longest |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for kind in KINDS:
        rows = [r for r in records if r["kind"] == kind]
        if rows:
            c = counts(rows)
            longest = max(rows, key=lambda r: r["seconds"])
            cells = [c[k] for k in ("jobs", *STATUSES)]
            out.append(
                f"| {kind} | " + " | ".join(map(str, cells)) + f" | {c['seconds']:.0f} |"
                f" {_cell(longest['name'])} ({longest['seconds']:.0f} s) |"
            )
    cells = [total[k] for k in ("jobs", *STATUSES)]
    out.append("| **all** | " + " | ".join(map(str, cells)) + f" | {total['seconds']:.0f} | |")
    out.append("")
    bad = [r for r in _ordered(records) if r["status"] != "pass"]
    if bad:
        out += ["## Not passing", "", "| job | status | host | message | command |"]
        out.append("|---|---|---|---|---|")
        for r in bad:
            out.append(
                f"| {r['kind']}/{_cell(r['name'])} | {r['status']} | {_cell(r['host'])} |"
                f" {_cell(r['message'])} | `{_cell(r['command'])}` |"
            )
    else:
        out.append("Every job passed.")
    out += [
        "",
        "Logs, reports and saved cases stay on the host that ran each job, under"
        f" `{run.get('out', DEFAULT_OUT)}/<kind>/<name>/`; report.json has every record.",
    ]
    return "\n".join(out) + "\n"


def write_report(records: list[dict], run: dict, out: str | Path = DEFAULT_OUT) -> dict:
    """junit.xml, report.md and report.json in out (on the machine that ran the
    regression)."""
    out = _resolve(out)
    out.mkdir(parents=True, exist_ok=True)
    ordered = _ordered(records)
    junit_xml(ordered, run).write(out / "junit.xml", encoding="utf-8", xml_declaration=True)
    (out / "report.md").write_text(markdown(ordered, run))
    rep = {
        "run": run,
        "total": counts(ordered),
        "kinds": {k: counts([r for r in ordered if r["kind"] == k]) for k in KINDS},
        "jobs": ordered,
    }
    (out / "report.json").write_text(json.dumps(rep, indent=1, default=str) + "\n")
    return rep


# ------------------------------------------------------------------ suites
def parse_seeds(text: str) -> list[int]:
    """Seeds from "0-3,7": [0, 1, 2, 3, 7]."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, sep, high = part.partition("-")
        seeds += list(range(int(low), int(high) + 1)) if sep else [int(low)]
    return seeds


def default_models() -> list[str]:
    """The small models `make sim` knows (full GPT-2 takes hours on the RTL). Asked of
    the command line in a subprocess, as the model jobs themselves are: the command line
    sits above verif/ in the import order (docs/architecture.md)."""
    code = "from sim.cli.models import MODELS; print(*MODELS)"
    cmd = [sys.executable, "-c", code]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return [name for name in done.stdout.split() if name != "gpt2"]


def suite(args) -> list[Job]:
    """The jobs a regression runs, from the suite options (see `--help`)."""
    jobs: list[Job] = []
    models = default_models() if args.models is None else args.models.split(",")
    for spec in filter(None, (m.strip() for m in models)):
        model, _, backend = spec.partition("@")
        for b in [backend] if backend else args.backends.split(","):
            fault = args.fault if b == "verilator" else None  # faults exist in the RTL only
            jobs.append(
                model_job(
                    model, b, args.tokens, args.seed, args.layers, args.hw, fault, args.timeout
                )
            )
    for seed in parse_seeds(args.fuzz_seeds) if args.fuzz_programs > 0 else []:
        for first in range(0, args.fuzz_programs, args.fuzz_chunk):
            n = min(args.fuzz_chunk, args.fuzz_programs - first)
            jobs.append(
                fuzz_job(seed, first, n, args.hw, args.fault, not args.no_shrink, args.timeout)
            )
    chosen: list[mutate.Mutant] = []
    if args.mutants > 0 or args.mutant_ids:
        every = mutate.all_mutants()
        by_id = {m.id: m for m in every}
        if unknown := [i for i in args.mutant_ids if i not in by_id]:
            raise ValueError(f"no mutant {', '.join(unknown)} (see `python -m verif.mutate list`)")
        chosen = [by_id[i] for i in args.mutant_ids]
        if args.mutants > 0:
            chosen += [m for m in mutate.sample(args.seed, args.mutants, every) if m not in chosen]
    for m in chosen:
        jobs.append(
            mutant_job(
                m,
                args.seed,
                args.mutant_programs,
                not args.no_mutant_tests,
                min(args.timeout, 600.0),
            )
        )
    return jobs


def _suite_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("suite")
    g.add_argument(
        "--models",
        default=None,
        help="comma-separated NAME or NAME@BACKEND; '' for none (default: every"
        " small model of sim/cli/models.py)",
    )
    g.add_argument(
        "--backends",
        default=",".join(DEFAULT_BACKENDS),
        help="backends of a model given without @BACKEND",
    )
    g.add_argument("--tokens", type=int, default=8, help="sequence length of the models")
    g.add_argument("--layers", type=int, default=None, help="transformer blocks to keep")
    g.add_argument(
        "--seed", type=int, default=0, help="seed of the models' weights and of the mutant sample"
    )
    g.add_argument("--fuzz-seeds", default=DEFAULT_FUZZ_SEEDS, help="e.g. 0-3,7")
    g.add_argument(
        "--fuzz-programs",
        type=int,
        default=DEFAULT_FUZZ_PROGRAMS,
        help="random programs per seed (0: none)",
    )
    g.add_argument("--fuzz-chunk", type=int, default=DEFAULT_FUZZ_CHUNK, help="programs per job")
    g.add_argument("--no-shrink", action="store_true", help="do not shrink failing programs")
    g.add_argument(
        "--mutants", type=int, default=DEFAULT_MUTANTS, help="mutants sampled with --seed (0: none)"
    )
    g.add_argument(
        "--mutant-id",
        dest="mutant_ids",
        action="append",
        default=[],
        help="this mutant too (repeatable; ids from `verif.mutate list`)",
    )
    g.add_argument("--mutant-programs", type=int, default=150, help="random programs per mutant")
    g.add_argument(
        "--no-mutant-tests", action="store_true", help="mutants get the random programs only"
    )
    g.add_argument("--hw", default=None, help="hardware config (name or YAML)")
    g.add_argument(
        "--fault", default=None, help="inject this RTL fault into the fuzz and RTL model jobs"
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds per job (per step of a mutant, at most 600)",
    )


# ------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m verif.regress", description=__doc__.split("\n\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="print the suite's jobs; runs nothing")
    r = sub.add_parser("run", help="run the suite and write the merged report")
    r.add_argument(
        "--scheduler",
        default=None,
        help="a Dask scheduler's address, tcp://host:port (default: a local pool)",
    )
    r.add_argument(
        "--jobs", type=int, default=None, help="local pool workers (default: one per CPU)"
    )
    r.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help="the report here; each job's artifacts under it on its host",
    )
    for p in (ls, r):
        _suite_options(p)
    args = ap.parse_args(argv)
    if (
        args.fuzz_chunk <= 0
        or getattr(args, "jobs", 1) is not None
        and getattr(args, "jobs", 1) <= 0
    ):
        ap.error("--fuzz-chunk and --jobs must be positive")
    try:
        jobs = suite(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.cmd == "list":
        for j in jobs:
            print(f"{j.id:<48} {json.dumps({k: v for k, v in j.params.items() if k != 'mutant'})}")
        print(f"{len(jobs)} jobs: {dict(Counter(j.kind for j in jobs))}")
        return 0
    if not jobs:
        print("error: the suite is empty", file=sys.stderr)
        return 2
    where = args.scheduler or f"a local pool of {args.jobs or os.cpu_count()} processes"
    print(f"{len(jobs)} jobs on {where}; artifacts under {args.out}/<kind>/<name>/", flush=True)
    started = datetime.now().isoformat(timespec="seconds")
    records, run = run_jobs(jobs, args.out, args.scheduler, args.jobs)
    client = f"{socket.gethostname()} ({platform.machine()}, {os.cpu_count()} CPUs)"
    given = sys.argv[1:] if argv is None else argv
    run.update(started=started, out=args.out, client=client, argv=given)
    rep = write_report(records, run, args.out)
    t = rep["total"]
    out = _resolve(args.out)
    print(
        f"{'FAIL' if exit_status(records) else 'PASS'}: {t['jobs']} jobs, {t['pass']} passed,"
        f" {t['fail']} failed, {t['error']} errors, {t['skip']} skipped in {run['wall_s']:.0f} s"
        f" on {run['executor']} ({run['workers']} workers); {out / 'report.md'},"
        f" {out / 'junit.xml'}"
    )
    return exit_status(records)


if __name__ == "__main__":
    sys.exit(main())
