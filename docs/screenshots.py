"""Screenshots of the main pages for the README, taken from a fresh hub with sample content.

Starts `hver serve` on a temporary data directory, pushes a small model (with a card)
and a dataset through huggingface_hub, and photographs the pages in Debian's
Chromium (driven by playwright). Writes docs/img/*.png.

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


def hver(data: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "hver", *args, "--data", str(data)],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


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
            hver(data, "user", "create", "alice")
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
            api.upload_file(path_or_fileobj=os.urandom(600_000),
                            path_in_repo="model.safetensors", repo_id=model)
            api.create_repo(dataset, repo_type="dataset")
            api.upload_file(path_or_fileobj=b"text\nGo\xc3\xb0an daginn\n", repo_type="dataset",
                            path_in_repo="train.csv", repo_id=dataset)
            pages = {
                "home": "/",
                "listing": "/models",
                "model": f"/{model}",
                "files": f"/{model}/tree/main",
                "dataset": f"/datasets/{dataset}",
            }
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                    "--no-sandbox", "--disable-background-networking",
                    "--disable-component-update"])
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                for name, path in pages.items():
                    page.goto(endpoint + path)
                    page.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
                    print(f"docs/img/{name}.png  {path}")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
