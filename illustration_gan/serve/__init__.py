"""A local web page to explore a trained generator (`python train.py --TYPE serve`).

`create_app(run_dir)` builds the Flask app (used by the tests); `serve(run_dir)` runs it
on 127.0.0.1:8000. See `illustration_gan.serve.app` for the endpoints.
"""

from illustration_gan.serve.app import create_app, resolve_dataset_path, serve

__all__ = ["create_app", "resolve_dataset_path", "serve"]
