"""Where images come from: files, folders and the photos that ship with installed packages."""

from featviz.data.photos import (
    SKIMAGE_PHOTOS,
    image_files,
    load_image,
    natural_images,
    resize,
    skimage_photo,
    to_tensor,
)

__all__ = ["SKIMAGE_PHOTOS", "image_files", "load_image", "natural_images", "resize", "skimage_photo", "to_tensor"]
