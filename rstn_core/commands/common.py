"""Argument checks shared by the subcommands (not a subcommand itself)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from rstn_core.errors import RstnError
from rstn_core.types import Method, Word


def word_argument(kind: type[Word], allowed: tuple[Word, ...] | None = None) -> Callable[[str], Word]:
    """An argparse ``type`` that turns the argument into a ``kind`` member (of ``allowed``, default all)."""
    allowed = tuple(kind) if allowed is None else allowed

    def parse(text: str) -> Word:
        member = kind.find(text, allowed)
        if member is None:
            raise argparse.ArgumentTypeError(f"expected {kind.expected(allowed)}, got {text!r}")
        return member

    parse.__name__ = kind.noun()
    return parse


def word_metavar(kind: type[Word], allowed: tuple[Word, ...] | None = None) -> str:
    """``{a,b,c}``: the values as argparse shows choices."""
    return "{" + ",".join(m.value for m in (kind if allowed is None else allowed)) + "}"


def parse_methods(text: str, allowed: tuple[Method, ...] = tuple(Method), option: str = "--methods") -> list[Method]:
    """``"rstn,c2f"`` -> [Method.RSTN, Method.C2F] (the edge where method names become members)."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    names = ", ".join(m.value for m in allowed)
    methods = []
    for word in words:
        method = Method.find(word, allowed)
        if method is None:
            raise RstnError(f"{option}: unknown method {word!r}; expected some of {names}")
        methods.append(method)
    if not methods:
        raise RstnError(f"{option}: name at least one of {names}, got {text!r}")
    return methods


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; refuses an unknown or unavailable device."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise RstnError(f"--device {name!r}: not a torch device; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RstnError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RstnError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type not in ("cpu", "mps"):
        raise RstnError(f"--device {name!r}: unsupported device type {device.type!r}; expected cpu or cuda")
    return name


def check_train_args(args) -> None:
    """``rstn train``: folds, device and the run folder (refused unless --overwrite or --resume)."""
    from rstn_core.folders import prepare_run_folder

    if args.split is None:
        if args.folds < 2:
            raise RstnError(f"--folds must be at least 2 (one fold is held out for testing, the others train), "
                            f"got {args.folds}")
        if not 0 <= args.fold < args.folds:
            raise RstnError(f"--fold must be in 0..{args.folds - 1} for --folds {args.folds}, got {args.fold}")
    if args.device not in (None, "cpu"):  # None: the recipe chooses (train.recipe_defaults)
        resolve_device(args.device)
    prepare_run_folder(args.out, overwrite=getattr(args, "overwrite", False), resume=args.resume)
