"""Third-party adapters: the example package in tests/example_plugin registers through the
`publisher.channels` entry point and is found by the registry, like any installed plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "tests" / "example_plugin"

PROBE = """
import json
from channels import registry
from channels.base import Post
echo = registry.get("echo")
article = echo({"url": "http://x", "token": "t"}).render(Post(title="Hello", body="**Hi** there", url="http://u/1",
                                                              issue_number=3, locale="en"))
event = echo({"url": "http://x", "token": "t"}).render(Post(title="Meetup", body="Come", format="event",
    extra={"start": "2030-01-01T12:00:00+00:00", "place": "Hall 1"}, timezone="Asia/Shanghai"))
print(json.dumps({"types": sorted(registry.available()), "module": echo.__module__,
                  "article": article.preview, "event": event.preview}))
"""


def installed(tmp_path: Path) -> dict[str, str]:
    """What `pip install ./tests/example_plugin` leaves behind: the code on the path and the
    distribution's metadata with its entry point (written directly: no network, no build)."""
    dist = tmp_path / "publisher_echo-1.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: publisher-echo\nVersion: 1.0.0\n")
    (dist / "entry_points.txt").write_text("[publisher.channels]\necho = publisher_echo:Echo\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(EXAMPLE), str(tmp_path)])}


def test_the_example_plugin_is_found_and_renders_with_its_own_templates(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], env=installed(tmp_path), capture_output=True, text=True,
                         timeout=60, check=True)
    found = json.loads(out.stdout)
    assert found["module"] == "publisher_echo"
    assert {"echo", "webhook", "wecom", "telegram"} <= set(found["types"])
    assert found["article"] == "[No. 3] Hello\n\nHi there"
    assert found["event"].startswith("Meetup\nWhen: 2030-01-01 20:00 · Where: Hall 1")


def test_without_the_package_it_is_not_there(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", "from channels import registry; print(sorted(registry.available()))"],
                         env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "'echo'" not in out.stdout and "'wecom'" in out.stdout
