"""What every ``metarl`` command shares: one-line usage errors."""

from __future__ import annotations

import argparse
from collections.abc import Callable

PROG = "metarl"


class UsageError(Exception):
    """A bad command-line argument: reported as ``metarl: error: <message>``, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # argparse prints the usage and exits; report it as one line like every other bad argument.
        raise UsageError(f"{message} (see '{self.prog} --help')")


def usage_errors(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` with its ValueError turned into a :class:`UsageError`."""
    try:
        return fn(*args, **kwargs)
    except ValueError as e:
        raise UsageError(str(e)) from None


def check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but no CUDA device is available; use --device cpu")
