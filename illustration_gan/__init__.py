"""illustration-gan: IllustrationGAN (2016) and its peers on TensorFlow 2 / Keras 3.

Modules, in the order data flows through them:
config (what to train) -> data / toy_faces (images in) -> networks, losses
(the GAN) -> training (objectives, terms, augment, regimes, ema, the step, the
callbacks and the epoch loop) -> run_folder (what a run leaves behind) ->
generate, metrics, serve (using a trained run); cli is the command line.
"""

__version__ = "0.1.0"

# Images whose header declares more pixels are refused unread (a decompression-bomb guard):
# the default of data.scan(max_megapixels=...), train.py's --max_megapixels and the cropper's.
MAX_MEGAPIXELS = 40.0


def cache_root() -> str:
    """Where downloads and derived files are kept (toy faces, real-image features, the attribute
    classifier, FID weights): $ILLUSTRATION_GAN_CACHE, else $XDG_CACHE_HOME/illustration_gan,
    else ~/.cache/illustration_gan."""
    import os

    if os.environ.get("ILLUSTRATION_GAN_CACHE"):
        return os.environ["ILLUSTRATION_GAN_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "illustration_gan")


class UserError(Exception):
    """A problem the user can fix (bad path, no images, existing output).

    train.py prints these as one line and exits non-zero, without a traceback.
    """


def _register_with_keras() -> None:
    """Makes `keras.saving.load_model("generator.keras")` work after `import illustration_gan`.

    The networks' classes register themselves with Keras when illustration_gan.networks is
    imported, which imports TensorFlow (seconds). So this package imports them only once
    Keras is there: now, if Keras is already imported (~15 ms more), or else right after
    the first `import keras` finishes, through a one-shot import hook.
    """
    import importlib
    import importlib.abc
    import importlib.util
    import sys

    def register() -> None:
        try:
            importlib.import_module("illustration_gan.networks")
        except Exception as error:  # noqa: BLE001  (never break `import keras` itself)
            import warnings

            warnings.warn(f"illustration_gan could not register its Keras layers: {error!r}", stacklevel=2)

    keras = sys.modules.get("keras")
    if keras is not None and getattr(keras, "saving", None) is not None:
        register()
        return

    class AfterKerasImport(importlib.abc.MetaPathFinder):
        searching = False

        def find_spec(self, name, path=None, target=None):
            if name != "keras" or self.searching:
                return None
            self.searching = True  # find_spec below asks every finder, this one too
            try:
                spec = importlib.util.find_spec("keras")
            finally:
                self.searching = False
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            exec_module = spec.loader.exec_module

            def exec_then_register(module):
                exec_module(module)
                if self in sys.meta_path:  # done once keras is loaded (a bare find_spec loads nothing)
                    sys.meta_path.remove(self)
                register()

            spec.loader.exec_module = exec_then_register
            return spec

    if not any(type(finder).__name__ == "AfterKerasImport" for finder in sys.meta_path):
        sys.meta_path.insert(0, AfterKerasImport())


_register_with_keras()
