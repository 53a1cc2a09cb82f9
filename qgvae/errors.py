"""Every error the ``qgvae`` command reports as one line, and its exit status.

The core raises these; :mod:`qgvae.cli` is the one place that turns them into
``qgvae COMMAND: error: MESSAGE`` on stderr and the exit status below. A message always names
the file or the configuration key at fault and says how to fix it.

=====================  ======  ====================================================
class                  status  raised when
=====================  ======  ====================================================
``ConfigError``        2       a run or workflow configuration is invalid
``DataError``          2       a dataset file or cache is missing, corrupt or the wrong size
``MissingWeightsError`` 2      LPIPS / FID weights are absent and cannot be downloaded
``RunFolderError``     1       a run folder's file is missing, corrupt or belongs to another run
``TrainingDiverged``   1       a loss became NaN or infinite
``ToolError``          1       an external program (LaTeX) failed; the message names its log
``Interrupted``        143     SIGTERM / SIGINT arrived; a checkpoint was written (resumable)
``DiskFull``           1       a file could not be written for lack of space; the earlier one
                               is intact (the message says how much is needed and free)
=====================  ======  ====================================================

An ``OSError`` that reaches the command (a folder that cannot be created, a file that cannot be
read) is reported the same way, as one line with status 1; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class QGVAEError(Exception):
    """Base class: an expected failure with a one-line message and an exit status."""

    exit_code = 1


class ConfigError(QGVAEError, ValueError):
    """A configuration problem, reported before any work starts. The message names the key."""

    exit_code = 2


class DataError(QGVAEError, RuntimeError):
    """A dataset file or cache is missing, corrupt or of the wrong size.

    The message names the file, what was expected and how to obtain or rebuild it.
    """

    exit_code = 2


class MissingWeightsError(QGVAEError, RuntimeError):
    """A pretrained network needed by a metric is not in the torch hub cache and could not be
    downloaded. Raised before anything is computed."""

    exit_code = 2


class RunFolderError(QGVAEError, RuntimeError):
    """A file of a run folder is missing, unreadable, corrupt or from another configuration."""

    exit_code = 1


class TrainingDiverged(QGVAEError, RuntimeError):
    """A loss became NaN or infinite; the message names the step."""

    exit_code = 1


class ToolError(QGVAEError, RuntimeError):
    """An external program the command runs (LaTeX for the report) failed; the message names
    the file holding its log."""

    exit_code = 1


class Interrupted(QGVAEError, RuntimeError):
    """SIGTERM/SIGINT arrived; a checkpoint was written and the run can be resumed."""

    exit_code = 143


class DiskFull(QGVAEError, OSError):
    """A file could not be written because its file system is full. The earlier version of the
    file is intact (every write is atomic); the message names the file, the space free and
    needed, and how to go on."""

    exit_code = 1
