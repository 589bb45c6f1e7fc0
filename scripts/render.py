"""Render a meta-policy adapting to one task: the same as ``metarl render`` (see ``metarl render --help``)."""

import sys

from metarl.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["render", *sys.argv[1:]]))
