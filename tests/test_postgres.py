"""Issue 5: workers on several machines share one study through PostgreSQL.

A real PostgreSQL server is started for this module (see postgres_server.py: found under
/usr/lib/postgresql, or installed with apt-get when running as root; skipped with the reason
otherwise). Two separate ``sweep run`` processes, as two machines would run them, then top up one
study together through a password-protected URL, and ``sweep run --workers 2`` does the same.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="PostgreSQL driver missing: pip install -e '.[postgres]'")

import live_run  # noqa: E402 (tests/ is on sys.path)
from optuna.trial import TrialState  # noqa: E402
from postgres_server import PostgresServer, Unavailable  # noqa: E402 (tests/ is on sys.path)

from sweep.spec import load_study  # noqa: E402
from sweep.store.connect import open_storage  # noqa: E402
from sweep.store.damage import orphans  # noqa: E402
from sweep.store.studies import TRIAL_ATTR, open_study  # noqa: E402

pytestmark = pytest.mark.slow

# Twelve batches of about half a second each with the compiled kernel: a worker would have to
# start some six seconds after the other to find no batch left, which a busy machine did do to
# six batches of four. (At 80 items and 60 epochs a batch now takes 2 ms.)
TRIALS, BATCH_SIZE = 24, 2
ITEMS, EPOCHS = 2000, 500
RUN_TIMEOUT_SECONDS = 120


@pytest.fixture(scope="module")
def postgres():
    try:
        server = PostgresServer.start()
    except Unavailable as reason:
        pytest.skip(f"no PostgreSQL server for the multi-machine test: {reason}")
    try:
        yield server
    finally:
        server.stop()


def write_study(folder: Path, name: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""\
        name = "{name}"
        trials = {TRIALS}
        batch_size = {BATCH_SIZE}
        seed = 5
        # One network a trial: the batch lengths above were measured so (the default is 5 x 2).
        folds = 1
        repeats = 1

        [data]
        source = "synthetic"
        items = {ITEMS}
        inputs = 4
        classes = 3
        seed = 3

        [network]
        epochs = {EPOCHS}

        [sampler]
        name = "tpe"

        [pruner]
        name = "median"
        """))
    return path


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sweep", *args]


def finish(processes: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """Wait for every process (killing all on timeout); their exit codes and outputs."""
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
            results.append((process.returncode, out, err))
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
            process.communicate()
        pytest.fail(f"`sweep run` did not finish within {RUN_TIMEOUT_SECONDS} s")
    return results


def check_outputs(results, server: PostgresServer) -> None:
    for code, out, err in results:
        assert code == 0, f"sweep run exited {code}:\n{out}\n{err}"
        assert server.password not in out + err, "the storage password leaked into the output"
        assert "***" in out, out  # the summary names the storage with its password masked


def check_study(url: str, name: str, *, expected_pids: int) -> list:
    storage = open_storage(url)
    try:
        trials = storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False)
    finally:
        storage.engine.dispose()
    states = collections.Counter(t.state for t in trials)
    finished = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
    # Counting and writing a batch happen under the study's advisory lock: exactly the total.
    assert finished == TRIALS, states
    assert states[TrialState.FAIL] == 0 and states[TrialState.RUNNING] == 0, states
    assert finished == len(trials), states
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), numbers  # unique and gap-free
    assert all(t.value is not None or t.user_attrs["curves"].get("diverged_epoch") for t in trials)
    pids = {t.user_attrs[TRIAL_ATTR]["pid"] for t in trials}
    assert len(pids) == expected_pids, (
        f"trials were written by {len(pids)} worker(s), not {expected_pids}: {pids}"
    )
    return trials


def start_machines(url: str, study: Path, folder: Path, count: int = 2,
                   confirm: bool = False) -> list[subprocess.Popen]:
    """``count`` independent ``sweep run`` processes at once, each as on its own machine;
    each races the study's top settings after its search only if ``confirm`` (the race costs
    as much as the search here, and one test of it is enough)."""
    command = sweep_command("run", str(study), "--storage", url, "--quiet",
                            *([] if confirm else ["--no-confirm"]))
    return [
        subprocess.Popen(
            command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]


def test_two_machines_share_a_study_through_postgresql(postgres, tmp_path):
    study = write_study(tmp_path, "pg-two-machines")
    # The study is created first, as by an earlier run; starting both on a brand-new study and
    # database at the same moment is tested below.
    storage = open_storage(postgres.url)
    open_study(load_study(study), storage)
    storage.engine.dispose()
    results = finish(start_machines(postgres.url, study, tmp_path, confirm=True))
    check_outputs(results, postgres)
    check_study(postgres.url, "pg-two-machines", expected_pids=2)
    # Both machines confirmed the finished study; one confirmation is stored and answers.
    best = subprocess.run(sweep_command("best", "pg-two-machines", "--json", "--storage",
                                        postgres.url), capture_output=True, text=True, check=True)
    assert json.loads(best.stdout)["confirmed"] is True


def test_workers_option_on_postgresql(postgres, tmp_path):
    study = write_study(tmp_path, "pg-workers")
    command = sweep_command(
        "run", str(study), "--storage", postgres.url, "--quiet", "--workers", "2", "--no-confirm"
    )
    results = finish(
        [
            subprocess.Popen(
                command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        ]
    )
    check_outputs(results, postgres)
    check_study(postgres.url, "pg-workers", expected_pids=2)


# The two tests below start two machines on a new study at the same moment. Unaided, each race
# they guard against is hit in roughly one run of 3 to 20; a slow server-side trigger widens its
# window so that it would be hit every time.


def test_simultaneous_start_on_an_empty_database(postgres, tmp_path):
    url = postgres.create_database("sweep_schema_race")
    # Creating the studies table takes 2 s longer, inside the transaction that creates the tables.
    postgres.psql(
        "CREATE FUNCTION slow_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() "
        "WHERE object_identity = 'public.studies') "
        "THEN PERFORM pg_sleep(2); END IF; END $$; "
        "CREATE EVENT TRIGGER slow_ddl ON ddl_command_end WHEN TAG IN ('CREATE TABLE') "
        "EXECUTE FUNCTION slow_ddl();",
        database="sweep_schema_race",
    )
    study = write_study(tmp_path, "pg-schema-race")
    check_outputs(finish(start_machines(url, study, tmp_path)), postgres)
    check_study(url, "pg-schema-race", expected_pids=2)


def test_simultaneous_start_on_a_new_study(postgres, tmp_path):
    url = postgres.create_database("sweep_study_race")
    open_storage(url).engine.dispose()  # Optuna's tables exist: only the study is new
    # Each study attribute write takes 2 s longer, between creating the study and its fingerprint.
    postgres.psql(
        "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(2); RETURN NEW; END $$; "
        "CREATE TRIGGER slow_study_attrs BEFORE INSERT ON study_user_attributes "
        "FOR EACH ROW EXECUTE FUNCTION slow_insert();",
        database="sweep_study_race",
    )
    study = write_study(tmp_path, "pg-study-race")
    check_outputs(finish(start_machines(url, study, tmp_path)), postgres)
    check_study(url, "pg-study-race", expected_pids=2)


# --- issue 26: deleting under live workers, the password kept off the command line, a server
# that dies mid-run ---------------------------------------------------------------------------


def test_delete_during_a_live_run_is_refused_and_with_force_the_run_stops_leaving_nothing(
    postgres, tmp_path
):
    url = postgres.create_database("sweep_delete_live")
    study = live_run.write_study(tmp_path, name="pg-del", **live_run.LONG_BATCHES)
    environment = {**os.environ, "MOMENTUM_SWEEP_RESULTS": str(tmp_path / "results")}
    process = live_run.start_run(study, url, cwd=tmp_path, env=environment)
    try:
        live_run.wait_for_running(url, "pg-del", process)
        refused = subprocess.run(sweep_command("delete", "pg-del", "--yes", "--storage", url),
                                 capture_output=True, text=True, env=environment, timeout=120)
        assert refused.returncode == 2, refused.stderr
        assert f"process {process.pid} on this machine" in refused.stderr
        assert "--force" in refused.stderr and postgres.password not in refused.stderr
        forced = subprocess.run(
            sweep_command("delete", "pg-del", "--yes", "--force", "--storage", url),
            capture_output=True, text=True, env=environment, timeout=120)
        assert forced.returncode == 0, forced.stderr
        deleted = int(re.search(r"\((\d+) trials?\)", forced.stdout).group(1))
        assert deleted >= 4  # at least the batch in flight
        _, err = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, err
    assert err.strip().splitlines() == [
        "sweep: error: study 'pg-del' was deleted while this run was writing to it; stopped, "
        "and nothing more of the run was stored"]
    storage = open_storage(url)
    try:
        assert [s.study_name for s in storage.get_all_studies()] == []
        with storage.engine.connect() as connection:
            assert orphans(connection) == []
            assert connection.exec_driver_sql("SELECT COUNT(*) FROM trials").scalar() == 0
    finally:
        storage.engine.dispose()
    checked = subprocess.run(sweep_command("check", "--storage", url), capture_output=True,
                             text=True, timeout=120)
    assert checked.returncode == 0 and checked.stdout.startswith("no problems found"), checked


def test_the_password_can_stay_off_the_command_line_in_pgpassword(postgres, tmp_path):
    study = write_study(tmp_path, "pg-pgpassword")
    url = postgres.url.replace(f":{postgres.password}@", "@")
    assert postgres.password not in url
    environment = {**os.environ, "PGPASSWORD": postgres.password}
    listed = subprocess.run(sweep_command("list", "--storage", url), capture_output=True,
                            text=True, env=environment, timeout=120)
    assert listed.returncode == 0, listed.stderr
    without = subprocess.run(sweep_command("run", str(study), "--storage", url), cwd=tmp_path,
                             capture_output=True, text=True, timeout=120,
                             env={k: v for k, v in os.environ.items() if k != "PGPASSWORD"})
    assert without.returncode == 2
    assert "no password supplied" in without.stderr and "PGPASSWORD" in without.stderr


def test_a_server_killed_mid_run_is_one_line_naming_the_cause(tmp_path):
    try:
        server = PostgresServer.start()  # its own: this test kills it
    except Unavailable as reason:
        pytest.skip(f"no PostgreSQL server: {reason}")
    try:
        study = live_run.write_study(tmp_path, name="pg-killed", **live_run.LONG_BATCHES)
        process = live_run.start_run(study, server.url, cwd=tmp_path)
        try:
            live_run.wait_for_running(server.url, "pg-killed", process)
            server.kill()
            _, err = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
    finally:
        server.stop()
    assert process.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("sweep: error: storage postgresql+psycopg://sweeper:***@"), err
    reason = lines[0].split(" failed: ", 1)[1]
    assert reason not in ("", "()") and ("connection" in reason or "server" in reason), err
    assert server.password not in err

