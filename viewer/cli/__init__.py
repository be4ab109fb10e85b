"""The command line: ``main.py`` (the window, and headless commands for the same jobs).

One module per command group: ``files`` (info, convert, screenshot, gui, demo), ``stats``,
``train`` (train-segmenter, segment), ``fit`` (fit, render, evaluate), ``capture``; what they
share is in ``common``; ``main`` parses and turns every failure into one line."""

from .entry import main

__all__ = ["main"]
