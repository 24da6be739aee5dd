"""The explorer page's endpoints, through Flask's test client, on a tiny trained run."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from illustration_gan import UserError, data, generate, training
from illustration_gan import config as config_lib
from illustration_gan.serve import Explorer, create_app, make_server, resolve_dataset_path, serve
from illustration_gan.serve import app as serve_app

TINY = dict(image_size=32, g_width=8, d_width=8, z_dim=16, batch_size=16, epochs=1)
NUM_FACES = 32


def make_faces(folder) -> None:
    """32 training images: shared real faces when present, else the built-in toy faces."""
    from conftest import FACES

    folder.mkdir()
    if FACES.exists():
        for i in range(NUM_FACES):
            (folder / f"{i}.jpg").write_bytes((FACES / f"{i}.jpg").read_bytes())
    else:
        from illustration_gan import toy_faces

        images, _ = toy_faces.generate(NUM_FACES, seed=0)
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{i}.png")


def train_tiny_run(root):
    """A one-epoch tiny DCGAN run on make_faces' images, in root/00000-faces-dcgan."""
    faces = root / "faces"
    make_faces(faces)
    config = config_lib.resolve("dcgan", dict(TINY, path=str(faces)))
    run_dir = root / "00000-faces-dcgan"
    training.train(config, data.scan(str(faces)), str(run_dir), tf.distribute.get_strategy())
    return run_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def app(run):
    application = create_app(str(run), max_faces=64)  # dataset: the run's own config.path
    application.testing = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


def png(response) -> np.ndarray:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.get_data())).convert("RGB"))


# ----------------------------------------------------------------------------- the page


def test_page_and_its_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in html
        response = client.get(asset)
        assert response.status_code == 200
        assert not re.search(r"https?://|//cdn|@import", response.get_data(as_text=True)), asset
    assert not re.search(r"https?://", html)  # no CDN: the page works offline
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


# ----------------------------------------------------------------------------- faces


def test_faces_are_the_generators_images_of_their_seeds(client, run):
    response = client.get("/api/faces?seed=10&count=8")
    assert response.status_code == 200
    body = response.get_json()
    assert body["seed"] == 10 and body["count"] == 8 and body["image_size"] == 32
    assert [f["seed"] for f in body["faces"]] == list(range(10, 18))
    sampler = generate.load_sampler(str(run))
    expected = sampler.images_from_latents(np.stack([sampler.latent_for_seed(s) for s in range(10, 18)]))
    for face, image in zip(body["faces"], expected):
        assert face["url"] == f"/api/face/{face['seed']}.png"
        np.testing.assert_array_equal(png(client.get(face["url"])), image)
    # A seed is an identity: the same face alone, in another grid, or after a new request.
    alone = png(client.get("/api/face/13.png"))
    np.testing.assert_array_equal(alone, expected[3])
    assert not np.array_equal(png(client.get("/api/face/14.png")), alone)


def test_faces_without_a_seed_start_at_a_random_one(client):
    first = client.get("/api/faces?count=4").get_json()
    second = client.get("/api/faces?count=4").get_json()
    assert first["seed"] != second["seed"]
    assert 0 <= first["seed"] <= serve_app.RANDOM_SEEDS - 4


def test_face_download_and_grid_picture(client):
    response = client.get("/api/face/5.png?download=1")
    assert png(response).shape == (32, 32, 3)
    assert response.headers["Content-Disposition"] == 'attachment; filename="face-seed5.png"'
    grid = png(client.get("/api/grid.png?seed=0&count=16"))
    assert grid.shape == (4 * 34 + 2, 4 * 34 + 2, 3)


def test_concurrent_requests_give_the_same_faces(app, run):
    expected = {s: app.test_client().get(f"/api/face/{s}.png").get_data() for s in range(200, 206)}
    fresh = create_app(str(run), dataset_path="", max_faces=64)  # nothing rendered yet
    results, errors = {}, []

    def fetch(seed):
        try:
            client = fresh.test_client()
            client.get(f"/api/faces?seed={seed}&count=3")
            results[seed] = client.get(f"/api/face/{seed}.png").get_data()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=fetch, args=(s,)) for s in range(200, 206)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == expected


# ----------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    "url, words",
    [
        ("/api/faces?seed=abc", "seed must be an integer"),
        ("/api/faces?seed=-1", "seed must be an integer"),
        ("/api/faces?seed=1.5", "seed must be an integer"),
        ("/api/faces?seed=%D9%A1%D9%A2", "seed must be an integer"),  # Arabic-Indic digits
        ("/api/faces?seed=2147483648", "from 0 to 2147483647"),
        ("/api/faces?seed=99999999999999999999999", "seed must be an integer"),
        ("/api/faces?seed=2147483647&count=2", "go past the largest seed"),
        ("/api/faces?count=0", "count must be an integer from 1 to 64"),
        ("/api/faces?count=100000", "count must be an integer from 1 to 64"),
        ("/api/faces?count=ten", "count must be an integer"),
        ("/api/face/abc.png", "seed must be an integer"),
        ("/api/face/1e3.png", "seed must be an integer"),
        ("/api/grid.png?count=4", "missing parameter 'seed'"),
        ("/api/nearest/abc", "seed must be an integer"),
        ("/api/nearest/1?k=0", "k must be an integer from 1 to 16"),
        ("/api/nearest/1?k=1000", "k must be an integer from 1 to 16"),
        ("/api/dataset/abc.png", "index must be an integer"),
        ("/api/dataset/999999.png", "index must be an integer from 0 to 31"),
        ("/api/interpolate.png?a=1", "missing parameter 'b'"),
        ("/api/interpolate.png?a=1&b=x", "b must be an integer"),
        ("/api/interpolate.png?a=1&b=2&t=2", "t must be a number from 0 to 1"),
        ("/api/interpolate.png?a=1&b=2&t=nan", "t must be a number from 0 to 1"),
        ("/api/interpolate.png?a=1&b=2&t=-0.1", "t must be a number from 0 to 1"),
        ("/api/interpolate.png?a=1&b=2&t=half", "t must be a number from 0 to 1"),
        ("/api/interpolate.png?a=1&b=2&mode=cubic", "mode must be 'slerp' or 'linear'"),
        ("/api/interpolate.gif?a=1&b=2&steps=1", "steps must be an integer from 2 to 64"),
        ("/api/interpolate.gif?a=1&b=2&steps=100000", "steps must be an integer from 2 to 64"),
    ],
)
def test_bad_requests_get_a_clear_400(client, url, words):
    response = client.get(url)
    assert response.status_code == 400, (url, response.status_code)
    assert response.mimetype == "application/json"
    message = response.get_json()["error"]
    assert words in message
    assert "Traceback" not in response.get_data(as_text=True)


def test_request_sizes_are_bounded(client):
    long_query = client.get("/api/faces?seed=1&pad=" + "x" * 5000)
    assert long_query.status_code == 414 and "query string" in long_query.get_json()["error"]
    big_body = client.post("/api/faces", data=b"x" * 100_000)
    assert big_body.status_code == 413 and "limited" in big_body.get_json()["error"]
    wrong_method = client.post("/api/faces", data=b"{}")
    assert wrong_method.status_code == 405 and wrong_method.get_json()["error"]
    unknown = client.get("/api/nothing-here")
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "not found: /api/nothing-here"


def test_an_unexpected_error_is_a_generic_500_without_traceback(client, monkeypatch):
    def broken(self, seeds):
        raise RuntimeError("secret internal detail /home/user/model")

    monkeypatch.setattr(Explorer, "face_pngs", broken)
    response = client.get("/api/face/1.png")
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "internal server error" in response.get_json()["error"]
    assert "secret" not in text and "Traceback" not in text


def test_unknown_or_unfinished_runs_are_user_errors(tmp_path, run):
    with pytest.raises(UserError, match="not a run folder"):
        create_app(str(tmp_path / "no-such-run"))
    unfinished = tmp_path / "00001-unfinished"
    unfinished.mkdir()
    (unfinished / "training_options.json").write_text((run / "training_options.json").read_text())
    with pytest.raises(UserError, match="generator.keras"):
        create_app(str(unfinished))


# ----------------------------------------------------------------------------- nothing outside the run


TRAVERSALS = [
    "/run/../../etc/passwd",
    "/run/..%2F..%2F..%2Fetc%2Fpasswd",
    "/run/%2e%2e/%2e%2e/etc/passwd",
    "/run/training_options.json",
    "/run/generator.keras",
    "/run/checkpoints",
    "/run/fakes_000001.png",
    "/api/dataset/..%2F..%2Fetc%2Fpasswd",
    "/api/dataset/..%2F..%2Fetc%2Fpasswd.png",
    "/api/dataset/%2Fetc%2Fpasswd.png",
    "/api/face/..%2F..%2Fetc%2Fpasswd.png",
    "/static/../app.py",
    "/static/..%2Fapp.py",
    "/static/%2e%2e/%2e%2e/__init__.py",
    "/static/..%5c..%5capp.py",
    "//etc/passwd",
    "/etc/passwd",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_path_traversal_is_refused(client, url):
    response = client.get(url)
    assert response.status_code in (400, 404), (url, response.status_code)
    text = response.get_data(as_text=True)
    assert "root:" not in text and "def create_app" not in text and "from illustration_gan" not in text


def test_path_traversal_over_real_http(app):
    """The same over a socket, where no client library tidies the path first."""
    server = make_server(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for url in TRAVERSALS + ["/static/../../generate.py", "/run/../training_options.json"]:
            conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
            conn.request("GET", url)
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            conn.close()
            assert response.status in (400, 404), (url, response.status)
            assert "root:" not in body and "import" not in body and '"config"' not in body, url
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        conn.request("GET", "/api/face/3.png")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.shutdown()
        thread.join(10)


# ----------------------------------------------------------------------------- nearest training images


def test_nearest_training_images_rank_by_pixel_mse(app, client, run):
    body = client.get("/api/nearest/7?k=5").get_json()
    assert body["k"] == 5 and body["searched"] == NUM_FACES and body["total"] == NUM_FACES
    neighbours = body["neighbours"]
    assert len(neighbours) == 5
    face = png(client.get("/api/face/7.png")).astype(np.float64)
    reals = np.stack([png(client.get(f"/api/dataset/{i}.png")) for i in range(NUM_FACES)]).astype(np.float64)
    mse = ((reals - face) ** 2).reshape(NUM_FACES, -1).mean(axis=1)
    assert [n["index"] for n in neighbours] == list(np.argsort(mse, kind="stable")[:5])
    for n in neighbours:
        assert n["url"] == f"/api/dataset/{n['index']}.png"
        assert n["mse"] == pytest.approx(mse[n["index"]], abs=0.01)
        assert n["name"] in os.listdir(run.parent / "faces")  # names, never paths
        np.testing.assert_array_equal(png(client.get(n["url"])), reals[n["index"]])


def test_nearest_without_a_dataset_says_why(run):
    client = create_app(str(run), dataset_path="").test_client()
    response = client.get("/api/nearest/7")
    assert response.status_code == 404 and "--path" in response.get_json()["error"]
    assert client.get("/api/dataset/0.png").status_code == 404
    assert client.get("/api/run").get_json()["nearest"]["available"] is False


def test_the_dataset_path_comes_from_the_run(run, tmp_path):
    assert resolve_dataset_path(str(run)) == str(run.parent / "faces")
    moved = tmp_path / "00002-moved"
    moved.mkdir()
    options = json.loads((run / "training_options.json").read_text())
    options["config"]["path"] = options["dataset"]["path"] = str(tmp_path / "gone")
    (moved / "training_options.json").write_text(json.dumps(options))
    assert resolve_dataset_path(str(moved)) is None
    options["config"]["path"] = ""  # a run on the built-in toy faces: the scanned folder
    options["dataset"]["path"] = str(run.parent / "faces")
    (moved / "training_options.json").write_text(json.dumps(options))
    assert resolve_dataset_path(str(moved)) == str(run.parent / "faces")


# ----------------------------------------------------------------------------- interpolation


def test_interpolation_frames_run_from_a_to_b(client):
    a, b = png(client.get("/api/face/1.png")), png(client.get("/api/face/2.png")).astype(int)
    start = png(client.get("/api/interpolate.png?a=1&b=2&t=0"))
    end = png(client.get("/api/interpolate.png?a=1&b=2&t=1"))
    middle = png(client.get("/api/interpolate.png?a=1&b=2&t=0.5"))
    assert np.abs(start.astype(int) - a).max() <= 2 and np.abs(end.astype(int) - b).max() <= 2
    assert not np.array_equal(middle, start) and not np.array_equal(middle, end)
    linear = png(client.get("/api/interpolate.png?a=1&b=2&t=0.5&mode=linear"))
    assert not np.array_equal(linear, middle)  # slerp (Gaussian z) and lerp differ in between


def test_interpolation_gif_loops_there_and_back(client):
    response = client.get("/api/interpolate.gif?a=1&b=2&steps=6&download=1")
    assert response.status_code == 200 and response.mimetype == "image/gif"
    assert response.headers["Content-Disposition"] == 'attachment; filename="interpolation-1-2.gif"'
    gif = Image.open(io.BytesIO(response.get_data()))
    assert gif.n_frames == 2 * 6 - 2 and gif.size == (256, 256)


# ----------------------------------------------------------------------------- the run


def test_run_summary_and_its_pictures(client, run):
    summary = client.get("/api/run").get_json()
    assert summary["name"] == run.name
    assert summary["preset"] == "dcgan" and summary["architecture"] == "dcgan"
    assert summary["image_size"] == 32 and summary["z_dim"] == 16
    assert summary["epochs_done"] == 1 and summary["epochs_planned"] == 1
    assert set(summary["last_epoch"]) >= {"d_loss", "g_loss"}
    assert summary["dataset"] == {"name": "faces", "num_images": NUM_FACES}
    assert summary["fid"] == []  # the page shows "not measured"
    assert summary["nearest"]["available"] is True
    assert str(run) not in json.dumps(summary)  # folder names only, no absolute paths
    assert summary["images"] == {"losses.png": "/run/losses.png", "latest_grid.png": "/run/latest_grid.png",
                                 "progress.gif": "/run/progress.gif"}
    assert png(client.get("/run/losses.png")).shape[0] > 100
    newest = sorted(p for p in os.listdir(run) if p.startswith("fakes_"))[-1]
    assert client.get("/run/latest_grid.png").get_data() == (run / newest).read_bytes()
    assert client.get("/run/progress.gif").mimetype == "image/gif"


def test_fid_is_shown_where_measured(client, run):
    path = run / serve_app.FID_FILE
    path.write_text('{"epoch": 1, "fid5k": 250.5, "kid5k": 0.2}\n{"epoch": 2, "fid5k": 180.25}\n{"epoch": 3, "fi')
    try:
        summary = client.get("/api/run").get_json()
    finally:
        path.unlink()
    assert summary["fid"] == [{"name": "fid5k", "value": 180.25, "epoch": 2, "source": serve_app.FID_FILE}]


# ----------------------------------------------------------------------------- serve()


class FakeServer:
    server_port = 8123

    def serve_forever(self):
        raise KeyboardInterrupt  # as Ctrl-C

    def server_close(self):
        pass


@pytest.fixture
def fake_server(monkeypatch):
    """serve() without a socket: werkzeug's make_server records its address and returns a FakeServer."""
    import werkzeug.serving

    calls = []
    monkeypatch.setattr(werkzeug.serving, "make_server",
                        lambda host, port, app, **options: calls.append((host, port)) or FakeServer())
    return calls


def test_serve_prints_its_address_and_warns_off_loopback(run, fake_server, capsys):
    assert serve(str(run), port=8123) == 0
    out, err = capsys.readouterr()
    assert "http://127.0.0.1:8123/" in out and "WARNING" not in err and "stopped" in out
    assert fake_server == [("127.0.0.1", 8123)]
    serve(str(run), dataset_path="", host="0.0.0.0", port=8123)
    out, err = capsys.readouterr()
    assert "WARNING" in err and "0.0.0.0" in err and "nearest neighbours off" in out
    with pytest.raises(UserError, match="does not exist"):
        serve(str(run), dataset_path=str(run / "missing-faces"))


@pytest.mark.parametrize("damage", ["[1, 2]", "null", '{"config": {"mod'])
def test_a_damaged_options_file_is_served_with_one_warning(run, fake_server, capsys, tmp_path, damage):
    """Issue 49, item 11: a list or null in training_options.json was a traceback at start (and a 500 from
    /api/run); the generator does not need the file, so the page is served and the damage said in a line."""
    import shutil

    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    (copy / "training_options.json").write_text(damage)
    assert serve(str(copy), port=8123) == 0
    out, err = capsys.readouterr()
    assert "training_options.json is damaged" in err and "Traceback" not in err and "http://127.0.0.1:8123/" in out
    application = create_app(str(copy))
    summary = application.test_client().get("/api/run").get_json()
    assert summary["epochs_done"] == 1 and summary["preset"] is None


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("127.0.0.2", True), ("0.0.0.0", False), ("", False),
                                            ("192.168.1.5", False), ("example.org", False)])
def test_serve_warns_unless_only_this_computer_can_reach_it(run, fake_server, capsys, host, loopback):
    serve(str(run), dataset_path="", host=host, port=8123)
    assert ("WARNING" in capsys.readouterr().err) is not loopback


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _raw_request(port: int, request: bytes, timeout: float = 120) -> tuple[int, dict, bytes]:
    """Sends bytes as they are (no client library tidies them); the status, headers and body of the answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            break
        except ConnectionRefusedError:  # serve() is still loading the generator
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


RAW_REQUESTS = {
    "a 20,000-character query": (b"GET /api/faces?seed=1&pad=" + b"x" * 20_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    "a 20,000-character path": (b"GET /" + b"x" * 20_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 404),
    "a request line over 64 KiB": (b"GET /" + b"x" * 70_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    "a malformed request line": (b"NONSENSE\r\n\r\n", 400),
    "a request line of four words": (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "an unknown HTTP version": (b"GET / HTTP/3.7\r\nHost: a\r\n\r\n", 505),
    "a face": (b"GET /api/face/3.png HTTP/1.1\r\nHost: a\r\n\r\n", 200),
}


def test_the_real_server_answers_json_and_names_no_versions(run, capsys):
    """serve() itself on a free port, stopped as by Ctrl-C: every error is JSON, and no Werkzeug/Python banner."""
    port, answers, errors, stopped = _free_port(), {}, [], threading.Event()

    def client():
        try:
            for name, (request, _) in RAW_REQUESTS.items():
                answers[name] = _raw_request(port, request)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            if not stopped.is_set():  # Ctrl-C for serve(), which runs in this test's (main) thread
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    # A shell starts background jobs with SIGINT ignored (`cmd &` without job control), and then
    # Python installs no KeyboardInterrupt handler: Ctrl-C, as a terminal sends it, needs one.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        assert serve(str(run), dataset_path="", port=port) == 0
    finally:
        stopped.set()
        thread.join(60)
        signal.signal(signal.SIGINT, previous)
    assert not errors, errors
    assert f"http://127.0.0.1:{port}/" in capsys.readouterr().out
    for name, (_, expected) in RAW_REQUESTS.items():
        status, headers, body = answers[name]
        assert status == expected, (name, status, body[:200])
        assert headers["server"] == "illustration-gan", (name, headers["server"])
        shown = " ".join(f"{k}: {v}" for k, v in headers.items()).lower()
        assert "werkzeug" not in shown and "python" not in shown, name
        if expected != 200:
            assert headers["content-type"].startswith("application/json"), (name, headers["content-type"])
            answer = json.loads(body)
            assert answer["status"] == expected and answer["error"], name
            assert len(answer["error"]) < 400 and b"<" not in body, name


def test_a_nan_loss_is_sent_as_null_so_the_answer_stays_json(client, run):
    """Issue 49, item 10: stats.jsonl may hold NaN (Python writes it), which is not JSON."""
    path = run / "stats.jsonl"
    kept = path.read_text()
    path.write_text(kept + '{"epoch": 2, "step": 4, "d_loss": NaN, "g_loss": Infinity, "d_real": 0.5}\n')
    try:
        text = client.get("/api/run").get_data(as_text=True)
    finally:
        path.write_text(kept)

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    summary = json.loads(text, parse_constant=refuse)
    assert summary["last_epoch"] == {"d_loss": None, "g_loss": None, "d_real": 0.5}
    assert summary["epochs_done"] == 2
