"""illustration-gan: IllustrationGAN (2016) and its peers on TensorFlow 2 / Keras 3.

Modules, in the order data flows through them:
config (what to train) -> data / toy_faces (images in) -> networks, losses,
regimes (the GAN) -> training_loop (the step and the epochs) -> run_folder
(what a run leaves behind) -> generate, metrics, serve (using a trained run).
"""

__version__ = "0.1.0"

# Images whose header declares more pixels are refused unread (a decompression-bomb guard):
# the default of data.scan(max_megapixels=...), train.py's --max_megapixels and the cropper's.
MAX_MEGAPIXELS = 40.0


class UserError(Exception):
    """A problem the user can fix (bad path, no images, existing output).

    train.py prints these as one line and exits non-zero, without a traceback.
    """
