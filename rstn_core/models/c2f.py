"""The C2F baseline (Zhou et al., MICCAI 2017): :class:`~rstn_core.models.rstn.RSTN` without saliency."""

from rstn_core.models.rstn import RSTN, build_c2f

__all__ = ["RSTN", "build_c2f"]
