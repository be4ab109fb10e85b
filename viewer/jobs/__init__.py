"""Background work. ``progress`` (no Qt): Progress, Cancelled, TerminalProgress, used by plugins
and headless commands. ``runner`` (Qt): Job and JobRunner, the only bridge between worker threads
and the Qt event loop; import it from ``viewer.jobs.runner``."""

from .progress import Cancelled, Progress, TerminalProgress

__all__ = ["Cancelled", "Progress", "TerminalProgress"]
