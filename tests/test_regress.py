"""Regressions (verif/regress.py): a small suite of real jobs on the local process pool
and, unchanged, on a Dask LocalCluster this test starts on the loopback address; a
random-program chunk with an injected RTL fault is a failure, a job that times out and
one whose subprocess refuses its options are errors, and the merged JUnit XML and
markdown say so."""

from __future__ import annotations

import json
import logging
import socket
import xml.etree.ElementTree as ET

import pytest

from verif import regress

# Case 27 of seed 11 adds with VBIN ADD: vpu_add_round makes it diverge (no shrinking,
# to keep the test short).
FAULTY_CHUNK = dict(seed=11, first=27, programs=2, fault="vpu_add_round", shrink=False)
EXPECTED = {
    "model/mlp@ref": "pass",
    "fuzz/seed11-cases0-2": "pass",
    "fuzz/seed11-cases27-28+vpu_add_round": "fail",
    "model/no-such-model@ref": "error",  # python -m sim refuses it: exit status 2
    "model/gpt2-tiny@ref": "error",  # timed out: torch alone takes longer to import
}


def small_suite() -> list[regress.Job]:
    return [
        regress.model_job("mlp", "ref"),
        regress.fuzz_job(11, 0, 3),
        regress.fuzz_job(**FAULTY_CHUNK),
        regress.model_job("no-such-model", "ref"),
        regress.model_job("gpt2-tiny", "ref", timeout=1.0),
    ]


def statuses(records: list[dict]) -> dict[str, str]:
    return {f"{r['kind']}/{r['name']}": r["status"] for r in records}


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pool")
    lines = []
    records, run = regress.run_jobs(small_suite(), out, workers=2, on_result=lines.append)
    regress.write_report(records, run, out)
    return out, records, run, lines


@pytest.mark.rtl
def test_the_pool_runs_every_job_to_its_verdict(pool_run):
    out, records, run, lines = pool_run
    assert statuses(records) == EXPECTED
    assert len(lines) == len(EXPECTED), "one result as each job finished"
    assert run["executor"] == "process pool" and run["workers"] == 2
    by_name = {f"{r['kind']}/{r['name']}": r for r in records}
    for r in records:
        assert r["host"] == socket.gethostname() and r["worker"].startswith("pid ")
    mlp = by_name["model/mlp@ref"]
    assert mlp["report"]["summary"]["passed"] and mlp["report"]["summary"]["layers_checked"] == 4
    clean = by_name["fuzz/seed11-cases0-2"]
    assert clean["report"]["programs"] == 3 and clean["report"]["failures"] == 0
    # The record carries the report's content; the artifacts stay in the job's directory.
    assert (out / "fuzz" / "seed11-cases0-2" / "summary.json").exists()
    faulty = by_name["fuzz/seed11-cases27-28+vpu_add_round"]
    assert faulty["message"].startswith("seed11-case27: divergence"), faulty["message"]
    assert "rerun: " in faulty["message"] and "--fault vpu_add_round" in faulty["message"]
    assert faulty["report"]["injected_faults"] == ["vpu_add_round"]
    assert "exit status 2: error: unknown model" in by_name["model/no-such-model@ref"]["message"]
    timed_out = by_name["model/gpt2-tiny@ref"]
    assert timed_out["message"].startswith("timed out after 1 s") and timed_out["seconds"] < 10


@pytest.mark.rtl
def test_the_merged_report_says_what_failed(pool_run):
    out, records, run, _ = pool_run
    root = ET.parse(out / "junit.xml").getroot()
    assert root.tag == "testsuites"
    cases = root.findall("testsuite/testcase")
    assert len(cases) == int(root.get("tests")) == len(EXPECTED)
    assert int(root.get("failures")) == 1 and int(root.get("errors")) == 2
    for suite in root.findall("testsuite"):
        mine = suite.findall("testcase")
        assert int(suite.get("tests")) == len(mine)
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
        assert int(suite.get("errors")) == len(suite.findall("testcase/error"))
        assert {c.get("classname") for c in mine} == {f"regress.{suite.get('name')}"}
        props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
        assert props["executor"] == "process pool" and props["workers"] == "2"
    got = {}
    for suite in root.findall("testsuite"):
        for c in suite.findall("testcase"):
            verdict = c.find("failure") if c.find("failure") is not None else c.find("error")
            got[f"{suite.get('name')}/{c.get('name')}"] = (
                "pass" if verdict is None else verdict.get("type")
            )
            assert float(c.get("time")) > 0
            assert "ran on " in c.find("system-out").text
    assert got == EXPECTED
    failure = root.find("testsuite[@name='fuzz']/testcase/failure")
    assert "seed11-case27: divergence" in failure.get("message")

    md = (out / "report.md").read_text()
    assert "**FAIL**: 2 passed, 1 failed, 2 errors" in md
    assert "| fuzz | 2 | 1 | 1 | 0 | 0 |" in md and "| model | 3 | 1 | 0 | 2 | 0 |" in md
    bad = [line for line in md.splitlines() if line.startswith(("| model/", "| fuzz/"))]
    assert sorted(line.split(" | ")[0][2:] for line in bad) == sorted(
        name for name, status in EXPECTED.items() if status != "pass"
    )
    assert any("timed out after 1 s" in line for line in bad)
    rep = json.loads((out / "report.json").read_text())
    assert rep["total"] == {**regress.counts(records), "jobs": 5}
    assert regress.exit_status(records) == 1
    assert regress.exit_status([r for r in records if r["status"] == "pass"]) == 0


@pytest.mark.rtl
def test_the_same_jobs_on_a_dask_cluster(pool_run, tmp_path):
    """The pool's jobs, unchanged, on a LocalCluster on 127.0.0.1: the same verdicts,
    each record naming the Dask worker that ran it."""
    distributed = pytest.importorskip("distributed")
    _, pool_records, _, _ = pool_run
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as cluster:
        workers = set(cluster.scheduler_info["workers"])
        records, run = regress.run_jobs(
            small_suite(), tmp_path, scheduler=cluster.scheduler_address, on_result=lambda r: None
        )
    assert statuses(records) == statuses(pool_records) == EXPECTED
    assert run["executor"] == "dask" and run["address"].startswith("tcp://127.0.0.1:")
    assert run["workers"] == 2
    assert {r["worker"] for r in records} <= workers
    assert all(r["host"] == socket.gethostname() for r in records)
    regress.write_report(records, run, tmp_path)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "2")
    assert "on dask (tcp://127.0.0.1:" in (tmp_path / "report.md").read_text()


def test_the_command_line_fails_on_an_erroring_job(tmp_path, capsys):
    rc = regress.main(["run", "--models", "no-such-model@ref", "--fuzz-programs", "0",
                       "--mutants", "0", "--jobs", "1", "--out", str(tmp_path)])  # fmt: skip
    assert rc == 1
    out = capsys.readouterr().out
    assert "[1/1] ERROR model/no-such-model@ref" in out and "FAIL: 1 jobs" in out
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["total"]["error"] == 1 and rep["run"]["executor"] == "process pool"
    assert (tmp_path / "junit.xml").exists() and (tmp_path / "report.md").exists()


def test_the_suite_from_the_command_line(capsys):
    argv = ["list", "--models", "mlp,gpt2-tiny@verilator", "--fuzz-seeds", "1-2,5",
            "--fuzz-programs", "250", "--fuzz-chunk", "100", "--mutants", "0",
            "--fault", "dma_stride"]  # fmt: skip
    assert regress.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines[:-1]]
    assert names[:3] == ["model/mlp@ref", "model/mlp@verilator+dma_stride",
                         "model/gpt2-tiny@verilator+dma_stride"]  # fmt: skip
    fuzz = [n for n in names if n.startswith("fuzz/")]
    assert len(fuzz) == 9 and "fuzz/seed5-cases200-249+dma_stride" in fuzz
    assert lines[-1] == "12 jobs: {'model': 3, 'fuzz': 9}"
    assert regress.parse_seeds("0-3,7") == [0, 1, 2, 3, 7]


def test_control_characters_in_a_log_do_not_break_the_xml():
    job = regress.fuzz_job(1, 0, 1)
    record = regress.error_record(job, "boom \x1b[31mred\x1b[0m", "log \x00 tail \x07")
    tree = regress.junit_xml([record], {"executor": "process pool", "workers": 1})
    text = ET.tostring(tree.getroot(), encoding="unicode")
    parsed = ET.fromstring(text)
    assert parsed.find("testsuite/testcase/error").get("message") == "boom ?[31mred?[0m"


@pytest.mark.slow
@pytest.mark.rtl
def test_a_mutant_job_passes_when_the_mutant_is_killed(tmp_path):
    """The vector unit's ACC write enable stuck at 0 (tests/test_mutate.py's mutant),
    as a regression job: built, killed by the random programs, a pass."""
    from verif import mutate

    src = (mutate.ROOT / "rtl/loom_vpu.sv").read_text().splitlines()
    m = next(
        m
        for m in mutate.all_mutants(["rtl/loom_vpu.sv"])
        if m.replacement == "mem.acc.wr_en = '0" and "op_q.dst_acc" in src[m.line - 2]
    )
    job = regress.mutant_job(m, fuzz_programs=20, tests=False)
    records, _ = regress.run_jobs([job], tmp_path, workers=1, on_result=lambda r: None)
    (r,) = records
    assert (r["kind"], r["name"], r["status"]) == ("mutant", m.id, "pass"), r["message"]
    assert r["message"].startswith("killed by fuzz") and r["report"]["status"] == "killed"
    assert (tmp_path / "mutant" / m.id / "result.json").exists()


@pytest.mark.slow
@pytest.mark.rtl
def test_a_job_whose_pool_worker_dies_runs_again(tmp_path):
    """SIGKILL the pool worker running a model job (and the job's own process group, as
    the machine would when it dies): the pool is rebuilt and the job runs to its verdict."""
    import os
    import signal
    import threading
    import time

    import psutil

    killed = []

    def kill_the_worker() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for p in psutil.Process().children(recursive=True):
                try:
                    if p.cmdline()[1:4] == ["-m", "sim", "mlp"]:
                        worker = p.parent()
                        os.killpg(p.pid, signal.SIGKILL)
                        worker.kill()
                        killed.append(worker.pid)
                        return
                except (psutil.Error, IndexError):
                    continue
            time.sleep(0.1)

    threading.Thread(target=kill_the_worker, daemon=True).start()
    jobs = [regress.model_job("mlp", "ref"), regress.fuzz_job(11, 0, 2)]
    records, _ = regress.run_jobs(jobs, tmp_path, workers=2, on_result=lambda r: None)
    assert killed, "the model job's worker was found and killed"
    assert statuses(records) == {"model/mlp@ref": "pass", "fuzz/seed11-cases0-1": "pass"}
    (mlp,) = [r for r in records if r["kind"] == "model"]
    assert mlp["worker_deaths"] == 1 and "a pool worker died 1x" in mlp["message"]
    assert mlp["worker"] != f"pid {killed[0]}"
