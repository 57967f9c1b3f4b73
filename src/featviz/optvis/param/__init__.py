"""Image parameterizations."""

from featviz.optvis.param.images import FourierImage, MacoImage, Parameterization, PixelImage
from featviz.optvis.param.spectrum import natural_spectrum

__all__ = ["FourierImage", "MacoImage", "Parameterization", "PixelImage", "natural_spectrum"]
