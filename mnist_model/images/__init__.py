"""Real images in: MNIST-style preprocessing of uploaded files and canvas drawings.

MNIST digits are white on black, scaled to fit a 20x20 box with their aspect ratio kept, and centred
by their centre of mass in a 28x28 frame; a photo that is merely resized to 28x28 is classified at
about chance level. :func:`preprocess_file` (uploaded bytes or a file-like object) and
:func:`preprocess_canvas` (an RGBA drawing) bring any digit image into that form and return every
intermediate step, so that the dashboard can show what happened. Anything that is not a usable
digit image is refused with :class:`ImageError`, whose message says what was wrong and what is
accepted; untrusted files are size-checked from their header before any pixel is decoded.

The package's modules, in the order of the steps: :mod:`~mnist_model.images.decoding` (decode,
content-sniffed first frame, EXIF orientation, reduced-size JPEG decoding, transparency and colour flattened
to grey), :mod:`~mnist_model.images.paper` (fit and subtract the paper, decide the polarity, map the
ink), :mod:`~mnist_model.images.segmentation` (the digit among specks, or each digit of a number) and
:mod:`~mnist_model.images.normalise` (fill outlines, normalise the stroke width, fit into 20x20 and
centre by mass in 28x28); :mod:`~mnist_model.images.pipeline` runs them in turn.
"""

from mnist_model.images.decoding import (
    ACCEPTED_FORMATS,
    MAX_BYTES,
    MAX_JPEG_SCANS,
    MAX_PIXELS,
    WORK_SIDE,
    ImageError,
)
from mnist_model.images.normalise import MNIST_CENTRE
from mnist_model.images.pipeline import (
    MAX_DRAWING_BYTES,
    PreprocessedImage,
    preprocess_canvas,
    preprocess_drawing,
    preprocess_file,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_BYTES",
    "MAX_DRAWING_BYTES",
    "MAX_JPEG_SCANS",
    "MAX_PIXELS",
    "MNIST_CENTRE",
    "WORK_SIDE",
    "ImageError",
    "PreprocessedImage",
    "preprocess_canvas",
    "preprocess_drawing",
    "preprocess_file",
]
