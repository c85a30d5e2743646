"""One exception type for every user-facing error.

The CLI catches :class:`HrkdError` and prints its message as one line, with no
traceback, and exits non-zero. Engine code raises it wherever the cause is the
user's input (a file, a preset field, a value), naming that input.
"""


class HrkdError(Exception):
    """An error caused by the user's input; its message is shown as one line."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
