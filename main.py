#!/usr/bin/env python
"""Lucid3D entry point: ``python main.py`` opens the viewer; ``python main.py --help`` lists
the headless commands (info, convert, screenshot, ...)."""

import sys

from viewer.cli import main

if __name__ == "__main__":
    sys.exit(main())
