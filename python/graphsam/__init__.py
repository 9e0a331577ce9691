"""graphsam: molecular property predictors trained with sharpness-aware optimizers.

The same engine as the `graphsam` command (Rust), in memory:

    >>> import graphsam
    >>> result = graphsam.train("esol", model="dmpnn", epochs=2, out="runs/esol")
    >>> model = graphsam.Model.load("runs/esol")
    >>> model.predict(["CCO", "not_a_smiles"])      # one row per input
    array([[-0.43...],
           [  nan]])

Functions mirror the command line's nouns: :func:`featurize`, :func:`train`,
:class:`Model` (``predict``, ``embed``), :func:`compare`. Extra keyword
arguments of :func:`train` and :func:`compare` are the command's flags
(``epochs=30`` is ``--epochs 30``, ``split_seed=0`` is ``--split-seed 0``,
``quiet=True`` is ``--quiet``). Work runs with the GIL released; Ctrl-C stops
a training after its current epoch's checkpoint, and the same call resumes it.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

# As the command-line binary does before anything else: burn restores saved
# optimizer moments on its default device, which must be the CPU unless a
# run asks for the GPU.
os.environ.setdefault("BURN_DEVICE", "flex")

import numpy as np  # noqa: E402

from . import _native  # noqa: E402
from ._native import GraphsamError, __version__  # noqa: E402

# Child processes (`compare --jobs`, `screen-bench`) rerun the command line
# through this interpreter: this process is Python, not a graphsam binary.
_native.set_self_program([sys.executable, "-m", "graphsam._cli"])

__all__ = [
    "GraphsamError",
    "Molecule",
    "Model",
    "Prediction",
    "TrainResult",
    "__version__",
    "compare",
    "featurize",
    "train",
]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class Molecule:
    """One featurized molecule: the arrays the backbones read."""

    #: Position of the SMILES in the input list.
    index: int
    #: ``n_atoms × atom_dim`` float32 atom features.
    atom_features: np.ndarray
    #: ``n_bonds × 2`` int64 atom indices of each bond (each bond once).
    bond_index: np.ndarray
    #: ``n_bonds × bond_dim`` float32 bond features.
    bond_features: np.ndarray
    #: ``n_atoms × n_atoms`` float32 topological distances (CoMPT only).
    distances: Optional[np.ndarray] = None

    @property
    def n_atoms(self) -> int:
        """Number of (heavy) atoms."""
        return int(self.atom_features.shape[0])


def featurize(
    smiles: Sequence[str], features: str = "compt"
) -> Tuple[List[Molecule], List[Tuple[int, str]]]:
    """Featurizes SMILES as the backbones see them.

    ``features`` is ``"compt"``, ``"chemprop"`` (D-MPNN) or ``"grover"``.
    Returns the valid molecules and, for every invalid input, its index and
    the reason; an invalid SMILES never raises.
    """
    raw, invalid = _native.featurize(_as_str_list(smiles, "smiles"), features)
    molecules = []
    for index, n_atoms, atom_dim, atoms, n_bonds, pairs, bond_dim, bonds, dist in raw:
        molecules.append(
            Molecule(
                index=index,
                atom_features=np.frombuffer(atoms, dtype="<f4").reshape(n_atoms, atom_dim),
                bond_index=np.frombuffer(pairs, dtype="<u4").astype(np.int64).reshape(n_bonds, 2),
                bond_features=np.frombuffer(bonds, dtype="<f4").reshape(n_bonds, bond_dim),
                distances=None
                if dist is None
                else np.frombuffer(dist, dtype="<f4").reshape(n_atoms, n_atoms),
            )
        )
    return molecules, list(invalid)


@dataclass
class Prediction:
    """Predictions with what :meth:`Model.predict` leaves out."""

    #: ``inputs × tasks``: probabilities (classification) or target units;
    #: NaN rows for inputs that could not be used.
    values: np.ndarray
    #: The spread over ensemble members, like ``values`` (None for one model).
    std: Optional[np.ndarray]
    #: (index, reason) for each input that could not be used.
    invalid: List[Tuple[int, str]]
    #: Column names.
    tasks: List[str]


class Model:
    """A trained model, or an ensemble of several, loaded from run folders."""

    def __init__(self, native: "_native.NativeModel") -> None:
        self._native = native

    @classmethod
    def load(cls, *paths: PathLike) -> "Model":
        """Loads run folders (holding ``model.json``) or training output
        folders (every ``seed-*`` run inside); two or more runs predict as an
        ensemble, with a spread."""
        if not paths:
            raise GraphsamError("Model.load needs at least one run folder")
        return cls(_native.NativeModel.load([os.fspath(p) for p in paths]))

    @property
    def tasks(self) -> List[str]:
        """The task names, in column order."""
        return list(self._native.tasks)

    @property
    def task_type(self) -> str:
        """``"classification"`` or ``"regression"``."""
        return self._native.task_type

    @property
    def backbone(self) -> str:
        """``"compt"``, ``"grover"`` or ``"dmpnn"``."""
        return self._native.backbone

    @property
    def members(self) -> List[Path]:
        """The run folders of the ensemble, in order."""
        return [Path(p) for p in self._native.members]

    def predict(
        self, smiles: Sequence[str], batch_size: int = 32
    ) -> np.ndarray:
        """``len(smiles) × tasks`` predictions: probabilities for
        classification, target units for regression. An input that cannot be
        used gets a NaN row and a warning with its reason (see
        :meth:`predict_detailed` for the reasons and the ensemble spread)."""
        detailed = self.predict_detailed(smiles, batch_size)
        _warn_invalid(detailed.invalid)
        return detailed.values

    def predict_detailed(self, smiles: Sequence[str], batch_size: int = 32) -> Prediction:
        """Predictions with the ensemble spread and the invalid inputs' reasons."""
        smiles = _as_str_list(smiles, "smiles")
        mean, std, width, invalid = self._native.predict(smiles, batch_size)
        shape = (len(smiles), width)
        return Prediction(
            values=_array(mean, shape),
            std=None if std is None else _array(std, shape),
            invalid=list(invalid),
            tasks=self.tasks,
        )

    def embed(self, smiles: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """``len(smiles) × width`` molecule vectors: what the task head reads
        (one model, not an ensemble). Unusable inputs get NaN rows and a warning."""
        smiles = _as_str_list(smiles, "smiles")
        mean, _, width, invalid = self._native.embed(smiles, batch_size)
        _warn_invalid(invalid)
        return _array(mean, (len(smiles), width))

    def __repr__(self) -> str:
        members = len(self._native.members)
        return (
            f"Model({self.backbone}, {self.task_type}, tasks={self.tasks}, "
            f"{members} member{'s' if members != 1 else ''})"
        )


@dataclass
class TrainResult:
    """What :func:`train` leaves: its folder, test scores and history."""

    #: The output folder (``seed-*`` run folders and ``summary.json``).
    out: Path
    #: One run folder per seed.
    runs: List[Path]
    #: The test metric's name (``roc-auc``, ``rmse``, ...).
    metric: str
    #: The test metric of each seed.
    test: List[float]
    #: Each seed's run summary as written to ``summary.json``.
    summaries: List[Dict[str, Any]] = field(repr=False)

    @property
    def test_mean(self) -> float:
        """Mean test metric over the seeds."""
        return float(np.mean(self.test))

    @property
    def test_std(self) -> float:
        """Sample standard deviation of the test metric (0 for one seed)."""
        return float(np.std(self.test, ddof=1)) if len(self.test) > 1 else 0.0

    @property
    def history(self) -> Any:
        """Per-epoch records of every seed (a ``seed`` column added): a pandas
        DataFrame when pandas is installed, else a list of dicts."""
        rows: List[Dict[str, Any]] = []
        for seed, run in enumerate(self.runs):
            with open(run / "metrics.csv", newline="") as f:
                for row in csv.DictReader(f):
                    rows.append({"seed": seed, **{k: _number(v) for k, v in row.items()}})
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    def load_model(self) -> Model:
        """The trained runs as one model (an ensemble for several seeds)."""
        return Model.load(self.out)


def train(
    data: Any,
    targets: Union[str, Sequence[str], None] = None,
    smiles_column: Optional[str] = None,
    task: Optional[str] = None,
    model: str = "compt",
    optimizer: str = "graphsam",
    seeds: int = 1,
    out: Optional[PathLike] = None,
    **options: Any,
) -> TrainResult:
    """Trains ``model`` with ``optimizer`` on ``data``, one run per seed.

    ``data`` is a registry name (``"bbbp"``, ``"esol"``, ...), a CSV path or
    a pandas DataFrame (written to ``out/data.csv``; give ``smiles_column``,
    ``targets`` and ``task``). ``options`` are the flags of ``graphsam
    train`` (``epochs``, ``patience``, ``batch_size``, ``hidden``, ``rho``,
    ``split_seed``, ``quiet``, ...). ``out`` defaults to
    ``runs/<data>-<model>-<optimizer>``; a finished run there is reused and an
    interrupted one resumed, as the command does. Raises GraphsamError with
    the command's message when training cannot start or fails.
    """
    out_dir = Path(out) if out is not None else None
    if _is_dataframe(data):
        if out_dir is None:
            raise GraphsamError("train(DataFrame) needs out=, the folder that keeps its CSV")
        out_dir.mkdir(parents=True, exist_ok=True)
        csv_path = out_dir / "data.csv"
        data.to_csv(csv_path, index=False)
        dataset = os.fspath(csv_path)
        name = "data"
    elif isinstance(data, (str, os.PathLike)):
        dataset = os.fspath(data)
        name = Path(dataset).stem if os.sep in dataset or dataset.endswith(".csv") else dataset
    else:
        raise GraphsamError(
            f"data must be a registry name, a CSV path or a pandas DataFrame, not {type(data).__name__}"
        )
    if out_dir is None:
        out_dir = Path("runs") / f"{name}-{model}-{optimizer}"
    argv = ["graphsam", "train", dataset, "--model", model, "--optimizer", optimizer]
    argv += ["--seeds", str(seeds), "--out", os.fspath(out_dir)]
    if targets is not None:
        argv += ["--targets", targets if isinstance(targets, str) else ",".join(targets)]
    if smiles_column is not None:
        argv += ["--smiles-column", smiles_column]
    if task is not None:
        argv += ["--task", task]
    argv += _flags(options)
    _native.run_cli(argv, raise_errors=True)
    with open(out_dir / "summary.json") as f:
        summaries = json.load(f)
    return TrainResult(
        out=out_dir,
        runs=[out_dir / f"seed-{s['seed']}" for s in summaries],
        metric=summaries[0]["metric"] if summaries else "",
        test=[float(s["test"]["value"]) for s in summaries],
        summaries=summaries,
    )


def compare(
    datasets: Union[str, Sequence[str]],
    optimizers: Union[str, Sequence[str]] = ("adam", "sam", "graphsam"),
    seeds: int = 3,
    model: str = "compt",
    out: PathLike = "runs/compare",
    **options: Any,
) -> List[Dict[str, Any]]:
    """Runs (or resumes) the ``graphsam compare`` grid and returns its table:
    one record per (dataset, optimizer) with mean ± std of the test metric,
    time per epoch, passes per epoch and the time ratio to Adam. The paired
    statistics (deltas with 95 % intervals) are in ``out/results.json``.
    ``options`` are the command's flags (``epochs``, ``jobs``, ``split_seed``,
    ``quiet``, ...)."""
    argv = ["graphsam", "compare", "--datasets", _joined(datasets)]
    argv += ["--optimizers", _joined(optimizers), "--seeds", str(seeds)]
    argv += ["--model", model, "--out", os.fspath(out)] + _flags(options)
    _native.run_cli(argv, raise_errors=True)
    with open(Path(out) / "results.json") as f:
        return list(json.load(f)["rows"])


def _flags(options: Dict[str, Any]) -> List[str]:
    argv: List[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def _joined(values: Union[str, Sequence[str]]) -> str:
    return values if isinstance(values, str) else ",".join(values)


def _as_str_list(values: Sequence[str], what: str) -> List[str]:
    if isinstance(values, str):
        raise GraphsamError(f"{what} must be a list of strings, not one string")
    out = list(values)
    for i, v in enumerate(out):
        if not isinstance(v, str):
            raise GraphsamError(f"{what}[{i}] is a {type(v).__name__}, not a string")
    return out


def _array(raw: bytes, shape: Tuple[int, int]) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f8").reshape(shape).copy()


def _warn_invalid(invalid: Sequence[Tuple[int, str]]) -> None:
    if invalid:
        shown = "; ".join(f"[{i}] {reason}" for i, reason in invalid[:3])
        more = f" and {len(invalid) - 3} more" if len(invalid) > 3 else ""
        warnings.warn(
            f"{len(invalid)} input(s) could not be used (NaN rows): {shown}{more}",
            stacklevel=3,
        )


def _is_dataframe(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and hasattr(data, "to_csv")


def _number(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text
