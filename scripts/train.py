"""Meta-train a policy: the same as ``metarl train`` (see ``metarl train --help``)."""

import sys

from metarl.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
