"""The user-facing errors and the exit codes they map to.

The CLI catches :class:`HrkdError` and prints its message as one line, with no
traceback, and exits with the error's ``exit_code``:

- 2 (``USAGE``): the cause is the user's input: an option, a preset field, a
  value, a file or directory handed to ``hrkd`` (missing, unreadable, malformed).
  A plain :class:`HrkdError` is this kind; click's own option errors exit 2 too.
- 1 (``FAILURE``): the input was fine but the run failed: a non-finite loss, a
  file that could not be written (unwritable directory, disk full), a failed
  process under ``--nproc``. Raise :class:`RunError`.

Engine code raises these wherever the cause is known, naming the input or path.
"""

FAILURE = 1
USAGE = 2


class HrkdError(Exception):
    """An error caused by the user's input (exit 2); its message is shown as one line."""

    default_exit_code = USAGE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        self.exit_code = self.default_exit_code if exit_code is None else exit_code


class RunError(HrkdError):
    """A run that failed although its input was valid (exit 1): non-finite loss, a failed write, a failed process."""

    default_exit_code = FAILURE
