"""The ``accelsim`` command line.  Every error is one readable line and exit code 2."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

import numpy as np

import isa

EXAMPLE = "conv3x3.s"


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def _example_text() -> tuple[str, str]:
    ref = resources.files("accelsim") / "examples" / EXAMPLE
    return ref.read_text(), f"<bundled example {EXAMPLE}>"


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise CliError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: not a text file") from None


def _load_words(path: str) -> np.ndarray:
    try:
        words = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CliError(f"{path}: not a program word file (.npy): {e}") from None
    if words.ndim != 2 or words.shape[1] != 2 or words.dtype.kind not in "ui":
        raise CliError(f"{path}: expected an (n, 2) integer array of 128-bit words, got {words.shape} {words.dtype}")
    return words.astype(np.uint64)


def cmd_asm(args: argparse.Namespace) -> None:
    text, name = (_read_text(args.file), args.file) if args.file else _example_text()
    try:
        words = isa.assemble(text)
    except isa.AssemblyError as e:
        raise CliError(f"{name}: {e}") from None
    if args.output:
        np.save(args.output, words)
        print(f"wrote {len(words)} instructions to {args.output}", file=sys.stderr)
    print(f"; {name}: {len(words)} instructions, {words.nbytes} bytes")
    sys.stdout.write(isa.disassemble(words, numbered=True))


def cmd_disasm(args: argparse.Namespace) -> None:
    words = _load_words(args.file)
    try:
        sys.stdout.write(isa.disassemble(words, numbered=args.numbered))
    except isa.DecodeError as e:
        raise CliError(f"{args.file}: {e}") from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="accelsim", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("asm", help="assemble a program (default: the bundled example) and print its disassembly")
    p.add_argument("file", nargs="?", help="assembly source (.s); omitted: the bundled conv3x3 example")
    p.add_argument("-o", "--output", help="write the (n, 2) uint64 words to this .npy file")
    p.set_defaults(func=cmd_asm)
    p = sub.add_parser("disasm", help="disassemble a program word file (.npy)")
    p.add_argument("file")
    p.add_argument("--numbered", action="store_true", help="append each instruction's index")
    p.set_defaults(func=cmd_disasm)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CliError as e:
        print(f"accelsim: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
