"""The README's demo command, run as a user would, on the committed sample of the real data."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.data import REES46_SAMPLE

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def test_the_demo_serves_a_personal_and_an_anonymous_fragment_and_stops_everything() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.local.demo", "--events", str(REES46_SAMPLE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    # The featured person is one the model answers (the example experiment's control arm), never its popular arm
    featured = re.search(
        r"featured person's fragment .*\nX-Personalization: (.+)\nX-Experiment-Variant: recs-vs-popular:(\w+)\n", out
    )
    assert featured is not None, out[-3000:]
    assert (featured[1], featured[2]) == ("personalized", "control")
    mode = "personalized"
    # ... printed beside what they did: their top categories against the recommended ones, and the overlap.
    learned = re.search(
        r"what the model learned, beside what they did\n"
        r"their top categories: (.+)\nrecommended categories: (.+)\noverlap: (.+)\n",
        out,
    )
    assert learned is not None, out[-3000:]
    assert re.match(r"[\w.:]+ \(\d+\.\d\)", learned[1])
    assert learned[2] != "none"
    assert "X-Personalization: fallback; reason=anonymous" in out
    assert "Cache-Control: private" in out
    assert "X-Personalization: segment" in out
    assert "Set-Cookie: pz_seg=s1." in out
    assert f'data-mode="{mode.split(";")[0]}"' in out
    assert re.search(r"total\s+\d+\.\d", out)
    # The live loop: a new visitor's clicks through the local edge personalize their next fragment.
    assert "published rules " in out
    live = re.search(r"after \d+\.\d s:\s+for-you (personalized|experiment; [^ ]+) \(.*variant ([^)]+)\)", out)
    assert live is not None, out[-2000:]
    assert live[1] == ("experiment; strategy=popular" if live[2].endswith(":popular") else "personalized")
    # Everything the demo started is gone: neither the AWS API server nor the serve app still listens.
    urls = re.findall(r"http://127\.0\.0\.1:\d+", out)
    assert len(urls) >= 2
    assert not any(listening(url) for url in urls)
