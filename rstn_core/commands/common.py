"""Argument checks shared by the subcommands (not a subcommand itself)."""

from __future__ import annotations

from rstn_core.errors import RstnError


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
    from rstn_core.outputs import prepare_run_folder

    if args.split is None:
        if args.folds < 2:
            raise RstnError(f"--folds must be at least 2 (one fold is held out for testing, the others train), "
                            f"got {args.folds}")
        if not 0 <= args.fold < args.folds:
            raise RstnError(f"--fold must be in 0..{args.folds - 1} for --folds {args.folds}, got {args.fold}")
    if args.device not in (None, "cpu"):  # None: the recipe chooses (train.recipe_defaults)
        resolve_device(args.device)
    prepare_run_folder(args.out, overwrite=getattr(args, "overwrite", False), resume=args.resume)
