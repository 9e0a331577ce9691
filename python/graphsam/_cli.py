"""The `graphsam` command installed by pip: the same command line as the Rust binary."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    """Runs `graphsam` with this process's arguments and exits with its status."""
    from . import _native

    # As the native binary: Ctrl-C ends the process at once (a training
    # resumes from its last epoch checkpoint when run again).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(_native.run_cli(["graphsam", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
