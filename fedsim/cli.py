"""The ``fedsim`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__


def _cmd_demo(args) -> int:
    from .demo import run_demo

    if args.requests <= 0:
        print("fedsim demo: --requests must be positive", file=sys.stderr)
        return 2
    run_demo(Path(args.out), requests=args.requests, seed=args.seed)
    return 0


def _cmd_list(args) -> int:
    from .federation import FIX_DESCRIPTIONS, POLICIES, STRATEGIES

    print("strategies:")
    for name, (_, desc) in STRATEGIES.items():
        print(f"  {name:<30} {desc}")
    print("policies:")
    for name, (_, desc) in POLICIES.items():
        print(f"  {name:<30} {desc}")
    print("fixes:")
    for name, desc in FIX_DESCRIPTIONS.items():
        print(f"  {name:<30} {desc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fedsim", description="Simulate and benchmark federated "
                                "model-inference routing with the APR Federation router.")
    p.add_argument("--version", action="version", version=f"fedsim {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser("demo", help="run the router demo and write its summary")
    d.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    d.add_argument("--requests", type=int, default=3000, help="requests per variant (default 3000)")
    d.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    d.set_defaults(func=_cmd_demo)
    ls = sub.add_parser("list", help="list strategies, policies and fixes")
    ls.set_defaults(func=_cmd_list)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `fedsim demo | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
