"""RSTN Studio: the Recurrent Saliency Transformation Network (Yu et al., CVPR 2018) for small-organ CT segmentation."""

__version__ = "0.1.0"
