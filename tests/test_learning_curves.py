"""Each stored trial's mean validation-loss curve is also Optuna's intermediate values, so
Optuna's plots and optuna-dashboard's learning-curve panel draw it."""

import io
import json
import math
from types import SimpleNamespace

import numpy as np
import optuna
import pytest

from sweep.search import run_study
from sweep.spec import parse_study
from sweep.store.connect import open_storage
from sweep.store.running import learning_curve
from sweep.store.studies import read_records

TINY = {
    "name": "tiny",
    "trials": 4,
    "batch_size": 4,
    "seed": 5,
    "folds": 2,
    "data": {"source": "synthetic", "items": 60, "inputs": 3, "classes": 3},
    "network": {"epochs": 6},
}


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    folder = tmp_path_factory.mktemp("curves")
    storage = open_storage(f"sqlite:///{folder / 'sweep.db'}")
    run_study(parse_study(TINY, str(folder / "tiny.toml")), storage)
    return storage


def test_intermediate_values_read_back_through_optuna_equal_the_trials_curve(stored):
    records = {r.number: r for r in read_records(stored, "tiny")}
    trials = optuna.load_study(study_name="tiny", storage=stored).trials
    assert len(trials) == 4
    for trial in trials:
        curve = records[trial.number].val_loss
        assert sorted(trial.intermediate_values) == list(range(1, len(curve) + 1))
        np.testing.assert_array_equal(
            [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)], curve
        )


def _get(app, path):
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "test",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    status = []
    body = b"".join(app(environ, lambda code, headers, exc_info=None: status.append(code)))
    assert status[0].startswith("200"), status
    return json.loads(body)


def test_optuna_dashboard_serves_a_trials_intermediate_values(stored):
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    app = optuna_dashboard.wsgi(stored)
    study_id = stored.get_study_id_from_name("tiny")
    detail = _get(app, f"/api/studies/{study_id}")
    records = {r.number: r for r in read_records(stored, "tiny")}
    assert detail["has_intermediate_values"] is True
    for trial in detail["trials"]:
        served = [point["value"] for point in trial["intermediate_values"]]
        np.testing.assert_allclose(served, records[trial["number"]].val_loss)


def _run(val_loss, epochs_trained):
    # What learning_curve reads of a sweep.train.Run.
    return SimpleNamespace(val_loss=np.array(val_loss, dtype=float), epochs_trained=epochs_trained)


def test_a_diverged_networks_non_finite_mean_is_kept_as_optuna_keeps_it():
    curve = learning_curve([_run([1.0, 0.5, math.inf, math.nan], 3), _run([0.8, 0.4, 0.3, 0.2], 4)])
    assert list(curve) == [1, 2, 3, 4]
    assert [curve[1], curve[2], curve[3]] == [0.9, 0.45, math.inf] and math.isnan(curve[4])
