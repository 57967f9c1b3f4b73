"""Input and output: images, grids, run records."""
