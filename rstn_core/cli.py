"""The ``rstn`` command line: one entry point, one module per subcommand.

Each module in :mod:`rstn_core.commands` provides ``HELP`` (one line), ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> int``; heavy imports happen inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rstn_core import __version__
from rstn_core.errors import RstnError

# subcommand name -> module; order is the order shown in --help
COMMANDS: dict[str, str] = {
    "phantoms": "rstn_core.commands.phantoms",
    "train": "rstn_core.commands.train",
    "predict": "rstn_core.commands.predict",
    "evaluate": "rstn_core.commands.evaluate",
    "demo-train": "rstn_core.commands.demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rstn",
        description="RSTN Studio: train, run and evaluate the Recurrent Saliency Transformation Network "
        "(Yu et al., CVPR 2018) for small-organ segmentation in abdominal CT.",
    )
    parser.add_argument("--version", action="version", version=f"rstn-studio {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def describe_os_error(exc: BaseException) -> str:
    """One line for an operating-system failure, naming the file and what the user can do."""
    import errno

    if isinstance(exc, MemoryError):
        return "out of memory (the input or configuration needs more memory than this machine has)"
    where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
    hints = {errno.ENOSPC: "no space left on the device; free some space and rerun",
             errno.EDQUOT: "disk quota exceeded; free some space and rerun",
             errno.EACCES: "permission denied; choose a folder you can write to",
             errno.EPERM: "operation not permitted; choose a folder you can write to",
             errno.EROFS: "read-only file system; choose a writable folder"}
    reason = hints.get(exc.errno or -1, exc.strerror or str(exc) or type(exc).__name__)  # type: ignore[union-attr]
    verb = "cannot write" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else "cannot access"  # type: ignore[union-attr]
    return f"{verb}{where}: {reason}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return int(args._run(args) or 0)
    except RstnError as exc:
        print(f"rstn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as exc:  # read-only folder, disk full, ...: one line, not a traceback
        logging.getLogger(__name__).debug("%s", args.command, exc_info=True)
        print(f"rstn {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rstn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
