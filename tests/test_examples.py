"""The examples in examples/ run as written against a hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_icelandic_demo(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name, token, _ = server.new_user_api("demo")
    env = dict(os.environ, HF_TOKEN=token, HF_HOME=str(tmp_path / "hf-home"),
               OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(EXAMPLES / "icelandic_demo.py"), "--epochs", "2"],
                         env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"pushed dataset {name}/islenska-setningar" in out.stdout
    assert f"pushed model {name}/islenska-tiny-gpt" in out.stdout
    assert "first training sentence: Góðan daginn, hvernig hefur þú það?" in out.stdout
    sample = [line for line in out.stdout.splitlines() if line.startswith("model sample: ")]
    assert sample and sample[0].startswith("model sample: Ég heiti")
