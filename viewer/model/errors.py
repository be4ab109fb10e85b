"""The one exception type the loaders and commands raise for bad input."""

from __future__ import annotations


class LoadError(Exception):
    """Input that cannot be used, with a message fit to show a user on one line.

    ``path`` is the file or folder concerned; ``str(err)`` is ``"PATH: what is wrong"``.
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # always one line
        super().__init__(f"{self.path}: {self.reason}")
