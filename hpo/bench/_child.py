"""Child-process entry: ``python -m hpo.bench._child module:function JSON_KWARGS THREADS``.

Prints the function's result dict as one JSON line.
"""

from __future__ import annotations

import importlib
import json
import sys

import torch


def main(argv: list[str]) -> None:
    """Resolve and call the target; write its JSON result to stdout."""
    target, raw_kwargs, threads = argv
    torch.set_num_threads(int(threads))
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    sys.stdout.write(json.dumps(func(**json.loads(raw_kwargs))) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
