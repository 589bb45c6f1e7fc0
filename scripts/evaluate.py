"""Evaluate fast adaptation: the same as ``metarl eval`` (see ``metarl eval --help``)."""

import sys

from metarl.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["eval", *sys.argv[1:]]))
