"""Every setting is documented in the README, with its current default."""

from __future__ import annotations

from pathlib import Path

from hver.config import describe

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    for variable, default, _ in describe():
        assert f"| `{variable}` | `{default}` |" in README, variable
