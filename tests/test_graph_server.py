"""``langgraph.json`` and ``langgraph dev``: the LOVE-R1 agent served over HTTP, offline, on the tiny model."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lover1_plugin.synthetic import make_test_video

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "langgraph.json"
READY_TIMEOUT_S = 180  # importing torch + transformers in the server takes ~15 s on 2 cores
RUN_TIMEOUT_S = 240


def test_langgraph_json_points_at_the_compiled_graph():
    config = json.loads(CONFIG.read_text())
    assert config["dependencies"] == ["."]
    spec = config["graphs"]["love_r1"]
    file_part, _, attribute = spec.partition(":")
    assert (ROOT / file_part).resolve() == ROOT / "graphs" / "love_r1.py"

    # Load the file by path, as the server does (not through the installed package).
    module_spec = importlib.util.spec_from_file_location("love_r1_served", ROOT / file_part)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    served = getattr(module, attribute)
    assert served.name == "love_r1"
    assert {"overview", "reason", "zoom", "answer"} <= set(served.get_graph().nodes)


def test_langgraph_json_passes_the_cli_validation():
    cli_config = pytest.importorskip("langgraph_cli.config", reason="langgraph-cli is not installed")
    raw = json.loads(CONFIG.read_text())
    assert cli_config.get_unknown_keys(raw) == []
    validated = cli_config.validate_config_file(CONFIG)
    assert validated["graphs"] == {"love_r1": "./graphs/love_r1.py:graph"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def _wait_until_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"langgraph dev exited with {process.returncode} before it was ready:\n{_log_tail(log)}")
        try:
            if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"langgraph dev was not ready after {READY_TIMEOUT_S} s:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and the processes it started (its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.mark.slow
def test_langgraph_dev_serves_the_agent(tmp_path, tiny_model_path):
    for module in ("langgraph_cli", "langgraph_api", "langgraph_runtime_inmem", "langgraph_sdk"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install 'langgraph-cli[inmem]' (or lover1-plugin[serve])")
    from langgraph_sdk import get_sync_client

    # 6 s at 2 fps: 12 fast frames; short so the tiny model's rounds take about a second.
    video = make_test_video(tmp_path / "clip.mp4", duration_s=6, fps=2, size=(64, 112))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "LOVER1_MODEL": "tiny",  # the graph's context falls back to LoveR1Context() defaults
        # conftest's LOVER1_CACHE is inherited: the server loads the tiny model tiny_model_path built
    }
    log = tmp_path / "langgraph-dev.log"
    command = [sys.executable, "-m", "langgraph_cli", "dev", "--host", "127.0.0.1", "--port", str(port),
               "--no-reload", "--no-browser"]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_ready(process, url, log)
        client = get_sync_client(url=url, timeout=RUN_TIMEOUT_S)
        assert [a["graph_id"] for a in client.assistants.search(graph_id="love_r1")] == ["love_r1"]

        thread = client.threads.create()
        inputs = {"video": str(video), "question": "What moves?", "overrides": {"max_new_tokens": 16}}
        events, final = [], None
        # No context over HTTP: the graph runs on LoveR1Context() defaults (LOVER1_MODEL).
        for part in client.runs.stream(thread["thread_id"], "love_r1", input=inputs, stream_mode=["custom", "values"]):
            if part.event == "custom":
                events.append(part.data["event"])
            elif part.event == "values":
                final = part.data
            assert part.event != "error", f"{part.data}\n{_log_tail(log)}"

        (run,) = client.runs.list(thread["thread_id"])
        assert run["status"] == "success", _log_tail(log)
        assert isinstance(final["answer"], str)
        assert final["errors"] == []
        assert final["fast_view"]["frames"] == 12  # min(int(6 * 2), 768)
        assert final["rounds"] and final["rounds"][0]["raw"]  # the model really generated
        assert {"frames_decoded", "round_started", "answer"} <= set(events)
        assert client.threads.get_state(thread["thread_id"])["values"]["answer"] == final["answer"]

        # A context passed over HTTP (plain JSON) becomes a LoveR1Context too.
        result = client.runs.wait(
            None, "love_r1", input={**inputs, "overrides": {"max_new_tokens": 4}}, context={"model": "tiny"}
        )
        assert result["errors"] == [] and isinstance(result["answer"], str)
    finally:
        _stop(process)
    assert process.poll() is not None
