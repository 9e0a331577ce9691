# %% [markdown]
# # graphsam from Python
#
# A walk-through in notebook cells (`# %%`: VS Code, Jupytext and PyCharm run
# them one by one; `python examples/python/quickstart.py` runs them all).
# It trains small models on ESOL (aqueous solubility, 1,128 molecules), so
# set `GRAPHSAM_DATA_DIR` to the folder holding `delaney-processed.csv`, or
# let graphsam download it from MoleculeNet.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np

import graphsam

work = Path(os.environ.get("GRAPHSAM_EXAMPLE_DIR", tempfile.mkdtemp(prefix="graphsam-")))
print("graphsam", graphsam.__version__, "writing to", work)

# %% [markdown]
# ## Featurize: what the backbones see
# One entry per valid SMILES; invalid ones come back with their reasons.

# %%
molecules, invalid = graphsam.featurize(["CCO", "c1ccccc1O", "C1CC"], "compt")
ethanol = molecules[0]
print(ethanol.atom_features.shape, ethanol.bond_index.tolist())
print(ethanol.distances)
print(invalid)

# %% [markdown]
# ## Train: three seeds of a D-MPNN with GraphSAM
# Keywords are the flags of `graphsam train`. Ctrl-C stops after the current
# epoch's checkpoint; running the cell again resumes.

# %%
result = graphsam.train(
    "esol", model="dmpnn", optimizer="graphsam", seeds=3,
    epochs=15, patience=5, out=work / "esol-dmpnn", quiet=True,
)  # fmt: skip
print(f"test {result.metric}: {result.test_mean:.3f} ± {result.test_std:.3f}", result.test)
history = result.history  # a DataFrame when pandas is installed
print(history[["seed", "epoch", "perturbed_loss", "valid_metric", "rho"]].tail() if hasattr(history, "tail") else history[-3:])

# %% [markdown]
# ## Predict with the ensemble of the three seeds
# Bad SMILES give NaN rows (and a warning), never an exception.

# %%
model = result.load_model()
print(model)
smiles = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "not_a_smiles"]
detailed = model.predict_detailed(smiles)
for s, value, spread in zip(smiles, detailed.values[:, 0], detailed.std[:, 0]):
    print(f"{s:28s} logS = {value:7.3f} ± {spread:.3f}")
print("unusable:", detailed.invalid)

# %% [markdown]
# ## Embeddings: the vectors the task head reads (one member)

# %%
member = graphsam.Model.load(result.runs[0])
vectors = member.embed(smiles[:3])
print(vectors.shape, np.round(vectors[:, :5], 3))

# %% [markdown]
# ## Compare optimizers: metric and cost side by side

# %%
table = graphsam.compare(
    "esol", optimizers=["adam", "sam", "graphsam"], seeds=2, model="dmpnn",
    epochs=10, out=work / "compare", quiet=True,
)  # fmt: skip
for row in table:
    print(
        f"{row['optimizer']:9s} {row['metric']} {row['test_mean']:.3f} ± {row['test_std']:.3f}"
        f"  {row['seconds_per_epoch']:.2f} s/epoch ({row['time_ratio_to_adam']:.2f}× Adam)"
    )
