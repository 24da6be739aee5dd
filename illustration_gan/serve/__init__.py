"""A local web page to explore a trained generator (`python train.py --TYPE serve`).

`create_app(run_dir)` builds the Flask app (used by the tests), `explorer_of(app)` is the
Explorer it serves, `make_server(app)` puts it behind a threaded HTTP server, and
`serve(run_dir)` runs one on 127.0.0.1:8000 until Ctrl-C.
`illustration_gan.serve.app` holds the endpoints, `illustration_gan.serve.explorer` what
they show (the generator, the training images, the run folder).
"""

from illustration_gan.serve.app import create_app, explorer_of, make_server, serve
from illustration_gan.serve.explorer import Explorer, resolve_dataset_path

__all__ = ["Explorer", "create_app", "explorer_of", "make_server", "resolve_dataset_path", "serve"]
