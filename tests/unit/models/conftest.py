import functools
import http.server
import re
import threading

import pytest
import torch

from medtl.models import weights


@pytest.fixture(autouse=True)
def _private_hub_cache(monkeypatch, tmp_path):
    """Each test gets an empty torch hub cache and no mirror."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(weights.MIRROR_ENV, raising=False)
    saved = dict(weights.WEIGHT_FILES)
    yield
    weights.WEIGHT_FILES.clear()
    weights.WEIGHT_FILES.update(saved)


@pytest.fixture
def http_server(tmp_path):
    """A loopback HTTP server serving files from a folder; yields (folder, base_url)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def torchvision_densenet_layout(state: dict, old_style: bool = True) -> dict:
    """Our DenseNet names -> torchvision's file layout (old files use 'norm.1')."""
    out = {}
    for key, value in state.items():
        key = key.replace(".layers.", ".")
        if old_style:
            key = re.sub(r"(denselayer\d+)\.(norm|relu|conv)([12])\.", r"\1.\2.\3.", key)
        out[key] = value
    return out


def save_canonical(tensors: dict, folder, stem: str) -> tuple:
    """Save like upstream does: name carries the first 8 hex digits of the SHA-256."""
    tmp = folder / f"{stem}.tmp"
    torch.save(tensors, tmp)
    prefix = weights.sha256_file(tmp)[:8]
    path = folder / f"{stem}-{prefix}.pth"
    tmp.rename(path)
    return path, prefix
