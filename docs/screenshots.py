"""Screenshots of the main pages for the README, taken from a fresh hub with sample content.

Starts `hver serve` on a temporary data directory, pushes a small model (with a card
and a real safetensors file) and a parquet dataset through huggingface_hub, signs in
through the login form, and photographs the pages in Debian's Chromium (driven by
playwright). Writes docs/img/*.png.

    .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

OUT = Path(__file__).parent / "img"
CHROMIUM = os.environ.get("HVER_CHROMIUM", "/usr/bin/chromium")

CARD = """---
license: apache-2.0
language: [is, en]
pipeline_tag: text-generation
library_name: transformers
tags: [icelandic, tiny]
datasets: [alice/islenska-setningar]
---
# islenska-tiny-gpt

A tiny GPT-2-style model trained on a few Icelandic sentences: a demo of a hub
that runs on your own machines.

| split | sentences |
|---|---|
| train | 10 |
| test | 2 |
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hver(data: Path, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run([sys.executable, "-m", "hver", *args, "--data", str(data)],
                         check=True, capture_output=True, text=True, input=stdin)
    return out.stdout.strip()


def safetensors_bytes() -> bytes:
    """A small but real safetensors file: two F32 tensors (the page counts parameters)."""
    import json
    import struct

    shapes = {"transformer.wte.weight": [512, 64], "transformer.h.0.mlp.c_fc.weight": [64, 256]}
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = shape[0] * shape[1] * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + os.urandom(offset)


def parquet_bytes() -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "text": ["Góðan daginn", "Hvað segirðu gott?", "Það er kalt í dag.",
                 "Ég bý í Reykjavík.", "Takk fyrir síðast."],
        "label": [1, 1, 0, 1, 1],
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def main() -> int:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data, port = Path(tmp) / "data", free_port()
        endpoint = f"http://127.0.0.1:{port}"
        env = dict(os.environ, HVER_LOG_LEVEL="warning", HF_HOME=str(Path(tmp) / "hf"))
        server = subprocess.Popen([sys.executable, "-m", "hver", "serve", "--data", str(data),
                                   "--port", str(port)], env=env)
        try:
            for _ in range(100):
                try:
                    httpx.get(f"{endpoint}/api/health")
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            password = "correct horse battery"
            hver(data, "user", "create", "alice", "--password-stdin", stdin=password + "\n")
            token = hver(data, "token", "create", "alice")
            os.environ.update(HF_ENDPOINT=endpoint, HF_HOME=str(Path(tmp) / "hf"))
            from huggingface_hub import HfApi

            api = HfApi(endpoint=endpoint, token=token)
            model, dataset = "alice/islenska-tiny-gpt", "alice/islenska-setningar"
            api.create_repo(model)
            api.upload_file(path_or_fileobj=CARD.encode(), path_in_repo="README.md",
                            repo_id=model)
            api.upload_file(path_or_fileobj=b'{"model_type": "gpt2", "n_layer": 2}',
                            path_in_repo="config.json", repo_id=model)
            api.upload_file(path_or_fileobj=safetensors_bytes(), path_in_repo="model.safetensors",
                            repo_id=model, commit_message="Add the weights")
            api.upload_file(path_or_fileobj=CARD.replace("a few", "twelve").encode(),
                            path_in_repo="README.md", repo_id=model,
                            commit_message="Say how many sentences")
            api.create_repo(dataset, repo_type="dataset")
            api.upload_file(path_or_fileobj=parquet_bytes(), repo_type="dataset",
                            path_in_repo="data/train-00000-of-00001.parquet", repo_id=dataset)
            commit = api.list_repo_commits(model)[0].commit_id
            pages = {
                "home": "/",
                "listing": "/models",
                "model": f"/{model}",
                "files": f"/{model}/tree/main",
                "commit": f"/{model}/commit/{commit}",
                "dataset": f"/datasets/{dataset}",
                "viewer": f"/datasets/{dataset}/viewer",
                "tokens": "/settings/tokens",
                "settings": f"/{model}/settings",
            }
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                    "--no-sandbox", "--disable-background-networking",
                    "--disable-component-update"])
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                page.goto(f"{endpoint}/login")
                page.get_by_label("Username").fill("alice")
                page.get_by_label("Password").fill(password)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{endpoint}/")
                for name, path in pages.items():
                    response = page.goto(endpoint + path)
                    if response is None or response.status != 200:
                        raise SystemExit(f"{path}: {response.status if response else '?'}")
                    page.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
                    print(f"docs/img/{name}.png  {path}")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
