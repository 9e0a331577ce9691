"""The Python package: the installed command, featurize, train, predict,
ensembles, embed, compare and the errors on bad input."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import graphsam

# Twenty small molecules with a made-up property (a linear function of the
# SMILES length), enough for a 12/4/4 split.
MOLECULES = [
    "CCO", "CCN", "CCC", "c1ccccc1", "c1ccccc1O", "CC(=O)O", "CC(=O)N",
    "c1ccncc1", "CCOC", "CCCl", "OCCO", "NCCN", "CC(C)O", "CC(C)N",
    "C1CCCCC1", "C1CCNCC1", "CC#N", "c1ccoc1", "CCCCO", "CCCCN",
]  # fmt: skip

TINY = dict(hidden=16, layers=1, epochs=2, batch_size=4, sizes="0.6,0.2,0.2", quiet=True)


def data_dir() -> Path | None:
    """The MoleculeNet CSVs: GRAPHSAM_DATA_DIR, else ../shared/data/moleculenet."""
    root = Path(__file__).resolve().parents[2]
    found = Path(os.environ.get("GRAPHSAM_DATA_DIR", root.parent / "shared/data/moleculenet"))
    if (found / "delaney-processed.csv").is_file():
        return found
    if os.environ.get("GRAPHSAM_REQUIRE_DATA") == "1":
        pytest.fail(f"no MoleculeNet data in {found} (GRAPHSAM_REQUIRE_DATA=1)")
    return None


@pytest.fixture()
def fixture_csv(tmp_path: Path) -> Path:
    path = tmp_path / "fixture.csv"
    rows = [f"{s},{len(s) * 0.3 - 1.0:.2f}" for s in MOLECULES]
    path.write_text("smiles,y\n" + "\n".join(rows) + "\n")
    return path


def tiny_run(csv: Path, out: Path, seeds: int = 1, model: str = "dmpnn") -> graphsam.TrainResult:
    return graphsam.train(
        csv, targets="y", smiles_column="smiles", task="regression",
        model=model, optimizer="graphsam", seeds=seeds, out=out, **TINY,
    )  # fmt: skip


def test_the_installed_command_is_the_cli():
    exe = shutil.which("graphsam")
    assert exe is not None, "pip put no graphsam command on PATH"
    shown = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "Usage: graphsam <COMMAND>" in shown.stdout and "train" in shown.stdout
    version = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"graphsam {graphsam.__version__}"
    wrong = subprocess.run([exe, "train", "--bogus"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "--bogus" in wrong.stderr


def test_featurize_gives_the_backbones_arrays_and_reasons_for_bad_smiles():
    molecules, invalid = graphsam.featurize(["CCO", "not_a_smiles", "", "c1ccccc1"], "compt")
    assert [m.index for m in molecules] == [0, 3]
    ethanol, benzene = molecules
    assert ethanol.n_atoms == 3 and ethanol.bond_index.tolist() == [[0, 1], [1, 2]]
    assert ethanol.atom_features.dtype == np.float32
    assert ethanol.bond_features.shape[0] == 2
    # Topological distances: C0-C1 one bond, C0-O2 two.
    assert ethanol.distances is not None
    assert ethanol.distances[0].tolist() == [0.0, 1.0, 2.0]
    assert benzene.n_atoms == 6 and benzene.bond_index.shape == (6, 2)
    assert [i for i, _ in invalid] == [1, 2]
    assert "empty" in invalid[1][1].lower()
    chemprop, _ = graphsam.featurize(["CCO"], "chemprop")
    assert chemprop[0].atom_features.shape == (3, 133)
    assert chemprop[0].distances is None
    with pytest.raises(graphsam.GraphsamError, match="mpnn"):
        graphsam.featurize(["CCO"], "mpnn")
    with pytest.raises(graphsam.GraphsamError, match="list of strings"):
        graphsam.featurize("CCO")


def test_train_then_predict_gives_numbers_and_nan_rows_for_bad_smiles(fixture_csv, tmp_path):
    result = tiny_run(fixture_csv, tmp_path / "run")
    assert result.metric == "rmse" and len(result.test) == 1
    assert np.isfinite(result.test_mean) and result.test_std == 0.0
    assert result.runs == [tmp_path / "run" / "seed-0"]
    history = result.history
    rows = history.to_dict("records") if hasattr(history, "to_dict") else history
    assert [r["epoch"] for r in rows] == [0, 1] and all(r["seed"] == 0 for r in rows)

    model = graphsam.Model.load(tmp_path / "run")
    assert model.tasks == ["y"] and model.task_type == "regression"
    assert model.backbone == "dmpnn"
    with pytest.warns(UserWarning, match="1 input"):
        values = model.predict(["CCO", "not_a_smiles", "CCN"])
    assert values.shape == (3, 1)
    assert np.isfinite(values[0, 0]) and np.isnan(values[1, 0]) and np.isfinite(values[2, 0])
    # The same molecule in another position or batch: the same prediction.
    again = model.predict(["CCN", "CCO"], batch_size=1)
    assert again[1, 0] == pytest.approx(values[0, 0], rel=1e-6)
    detailed = model.predict_detailed(["CCO", "C1CC"])
    assert detailed.std is None and detailed.invalid[0][0] == 1
    vectors = model.embed(["CCO", "CCC"])
    assert vectors.shape == (2, 16) and np.isfinite(vectors).all()

    # Training again into the same folder reuses the finished run.
    again = tiny_run(fixture_csv, tmp_path / "run")
    assert again.test == result.test


def test_an_ensemble_predicts_the_mean_of_its_members_with_their_spread(fixture_csv, tmp_path):
    result = tiny_run(fixture_csv, tmp_path / "ens", seeds=2)
    assert len(result.runs) == 2
    smiles = ["CCO", "c1ccncc1", "???"]
    ensemble = result.load_model()
    assert len(ensemble.members) == 2
    got = ensemble.predict_detailed(smiles)
    members = [graphsam.Model.load(run).predict_detailed(smiles).values for run in result.runs]
    np.testing.assert_allclose(got.values[:2], (members[0][:2] + members[1][:2]) / 2, rtol=1e-6)
    spread = np.abs(members[0][:2] - members[1][:2]) / np.sqrt(2)
    np.testing.assert_allclose(got.std[:2], spread, rtol=1e-5, atol=1e-9)
    assert np.isnan(got.values[2]).all() and got.invalid[0][0] == 2
    with pytest.raises(graphsam.GraphsamError, match="one model"):
        ensemble.embed(["CCO"])


def test_a_dataframe_trains_like_its_csv(fixture_csv, tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(fixture_csv)
    from_frame = graphsam.train(
        frame, targets=["y"], smiles_column="smiles", task="regression",
        model="dmpnn", out=tmp_path / "frame", **TINY,
    )  # fmt: skip
    from_csv = tiny_run(fixture_csv, tmp_path / "csv")
    assert (tmp_path / "frame" / "data.csv").is_file()
    assert from_frame.test == pytest.approx(from_csv.test, rel=1e-6)


def test_bad_input_raises_with_the_commands_message(fixture_csv, tmp_path):
    with pytest.raises(graphsam.GraphsamError, match="holds neither"):
        graphsam.Model.load(tmp_path)
    with pytest.raises(graphsam.GraphsamError, match="missing: No such file"):
        graphsam.Model.load(tmp_path / "missing")
    with pytest.raises(graphsam.GraphsamError, match="(?i)optimizer"):
        graphsam.train(fixture_csv, targets="y", task="regression", optimizer="adamw",
                       out=tmp_path / "x", **TINY)  # fmt: skip
    with pytest.raises(graphsam.GraphsamError, match="no_such_column"):
        graphsam.train(fixture_csv, targets="no_such_column", task="regression",
                       model="dmpnn", out=tmp_path / "y", **TINY)  # fmt: skip
    with pytest.raises(graphsam.GraphsamError, match="--bogus"):
        graphsam.train(fixture_csv, targets="y", task="regression", bogus=1, out=tmp_path / "z")
    with pytest.raises(graphsam.GraphsamError, match="DataFrame"):
        graphsam.train(42)


def test_compare_returns_the_table_as_records_with_cells_in_child_processes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [f"m{i},{s},{1.0 - len(s) * 0.25}" for i, s in enumerate(MOLECULES)]
    (data / "delaney-processed.csv").write_text(
        "Compound ID,smiles,measured log solubility in mols per litre\n" + "\n".join(rows) + "\n"
    )
    os.environ["GRAPHSAM_DATA_DIR"] = str(data)
    os.environ["GRAPHSAM_CACHE_DIR"] = str(tmp_path / "cache")
    try:
        table = graphsam.compare(
            "esol", optimizers=["adam", "graphsam"], seeds=2, model="dmpnn",
            out=tmp_path / "grid", jobs=2, **TINY,
        )  # fmt: skip
    finally:
        del os.environ["GRAPHSAM_DATA_DIR"], os.environ["GRAPHSAM_CACHE_DIR"]
    assert [(r["dataset"], r["optimizer"]) for r in table] == [("esol", "adam"), ("esol", "graphsam")]
    assert all(r["seeds_finished"] == 2 and np.isfinite(r["test_mean"]) for r in table)
    assert table[0]["time_ratio_to_adam"] == 1.0
    # --jobs 2 ran each cell in a child process (this interpreter with
    # -m graphsam._cli), which logged it.
    logs = sorted(p.name for p in (tmp_path / "grid" / "logs").iterdir())
    assert logs == [f"esol-{o}-seed-{s}.log" for o in ("adam", "graphsam") for s in (0, 1)]


def test_the_issue_example_on_esol(tmp_path):
    """`graphsam.train('esol', model='dmpnn', epochs=2, ...)` then one number and one NaN."""
    found = data_dir()
    if found is None:
        pytest.skip("no MoleculeNet data (set GRAPHSAM_DATA_DIR)")
    os.environ["GRAPHSAM_DATA_DIR"] = str(found)
    try:
        graphsam.train("esol", model="dmpnn", epochs=2, hidden=32, out=tmp_path / "x", quiet=True)
    finally:
        del os.environ["GRAPHSAM_DATA_DIR"]
    with pytest.warns(UserWarning):
        values = graphsam.Model.load(tmp_path / "x").predict(["CCO", "not_a_smiles"])
    assert values.shape == (2, 1) and np.isfinite(values[0, 0]) and np.isnan(values[1, 0])


def test_ctrl_c_stops_a_training_after_a_checkpoint_and_the_same_call_resumes(tmp_path):
    # Repeated molecules: epochs long enough to interrupt in the middle of a run.
    csv = tmp_path / "many.csv"
    rows = [f"{s},{len(s) * 0.3 - 1.0:.2f}" for s in MOLECULES * 40]
    csv.write_text("smiles,y\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    script = (
        # A shell that starts jobs in the background (a CI runner, `cmd &`)
        # hands them SIGINT ignored, and Python then keeps it ignored: give
        # the child Python's own handler, as an interactive terminal does.
        "import signal\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import graphsam, sys\n"
        f"graphsam.train({str(csv)!r}, targets='y', task='regression', model='dmpnn',\n"
        f"    out={str(out)!r}, epochs=30, hidden=16, layers=1, batch_size=4)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stderr=subprocess.PIPE, text=True
    )
    assert child.stderr is not None
    seen = []
    for line in child.stderr:
        seen.append(line)
        if line.startswith("epoch   1"):
            child.send_signal(signal.SIGINT)
            break
    rest = child.communicate(timeout=120)[1]
    text = "".join(seen) + rest
    assert child.returncode != 0, text
    assert "stopping after the current epoch's checkpoint" in text, text
    assert "KeyboardInterrupt" in text, text
    done = len((out / "seed-0" / "metrics.csv").read_text().splitlines()) - 1
    assert 2 <= done < 30, text
    # The same call picks the run up where it stopped and finishes it.
    result = graphsam.train(
        csv, targets="y", task="regression", model="dmpnn", out=out,
        epochs=30, hidden=16, layers=1, batch_size=4, quiet=True,
    )  # fmt: skip
    assert len(result.history) == 30 and np.isfinite(result.test[0])


def test_training_and_prediction_release_the_gil(fixture_csv, tmp_path):
    csv = tmp_path / "many.csv"
    rows = [f"{s},{len(s) * 0.3 - 1.0:.2f}" for s in MOLECULES * 20]
    csv.write_text("smiles,y\n" + "\n".join(rows) + "\n")

    def ticks_while(work) -> int:
        """How often this thread ran while `work` ran in another."""
        worker = threading.Thread(target=work)
        ticks = 0
        worker.start()
        while worker.is_alive():
            ticks += 1
            time.sleep(0.002)
        worker.join()
        return ticks

    out = tmp_path / "gil"
    # Held for the whole call, the GIL would leave this thread a tick or two.
    assert ticks_while(lambda: tiny_run(csv, out)) > 20
    model = graphsam.Model.load(out)
    assert ticks_while(lambda: model.predict(MOLECULES * 200, batch_size=8)) > 5
