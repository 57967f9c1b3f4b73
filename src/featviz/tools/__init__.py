"""The tools that make images through the one render loop: layer atlases, diverse sets,
DeepDream, zoom videos, a unit across checkpoints, and :func:`replay` of any record."""
