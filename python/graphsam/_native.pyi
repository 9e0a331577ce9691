"""Type stubs of the native module (crates/graphsam-py)."""

from os import PathLike
from typing import List, Optional, Sequence, Tuple, Union

__version__: str

class GraphsamError(Exception):
    """graphsam refused or failed: bad input, a missing run folder, a failed training, ..."""

def run_cli(argv: Sequence[str], raise_errors: bool = False) -> int:
    """Runs the `graphsam` command line (program name first); returns its exit status."""

def set_self_program(program: Sequence[str]) -> None:
    """How child processes rerun the command line (program and leading arguments)."""

def featurize(
    smiles: Sequence[str], features: str
) -> Tuple[
    List[Tuple[int, int, int, bytes, int, bytes, int, bytes, Optional[bytes]]],
    List[Tuple[int, str]],
]:
    """Featurized molecules as raw little-endian arrays, and (index, reason) per invalid input."""

_Screened = Tuple[bytes, Optional[bytes], int, List[Tuple[int, str]]]

class NativeModel:
    """A trained model or an ensemble, loaded from run folders."""

    @staticmethod
    def load(paths: Sequence[Union[str, PathLike[str]]]) -> NativeModel: ...
    @property
    def tasks(self) -> List[str]: ...
    @property
    def task_type(self) -> str: ...
    @property
    def backbone(self) -> str: ...
    @property
    def members(self) -> List[str]: ...
    def predict(self, smiles: Sequence[str], batch_size: int = 32) -> _Screened: ...
    def embed(self, smiles: Sequence[str], batch_size: int = 32) -> _Screened: ...
