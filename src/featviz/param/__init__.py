"""Image parameterizations."""

from featviz.param.images import FourierImage, MacoImage, Parameterization, PixelImage
from featviz.param.spectrum import natural_spectrum

__all__ = ["FourierImage", "MacoImage", "Parameterization", "PixelImage", "natural_spectrum"]
