"""`langgraph dev --no-browser` serves the graph offline, as Studio and the LangGraph SDK see it."""

from __future__ import annotations

import re

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from tests.conftest import MODEL_VARIABLES, REPO, SAMPLE_BOOK, free_port, run_cli



@pytest.fixture
def langgraph_dev(tmp_path, database_url):
    home = tmp_path / "home"
    ingest = run_cli("ingest", str(SAMPLE_BOOK), env={"BOOKTUTOR_HOME": str(home), "DATABASE_URL": database_url})
    assert ingest.returncode == 0, ingest.stderr
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
    env.update(BOOKTUTOR_HOME=str(home), LANGGRAPH_CLI_NO_ANALYTICS="1", LANGSMITH_TRACING="false")
    langgraph = Path(sys.executable).with_name("langgraph")
    process = subprocess.Popen(
        [str(langgraph), "dev", "--no-browser", "--no-reload", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.poll() is not None else ""
                pytest.fail(f"langgraph dev did not start:\n{output[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


async def test_langgraph_dev_serves_the_tutor_graph_offline(langgraph_dev):
    client = get_client(url=langgraph_dev)

    assistants = await client.assistants.search(graph_id="tutor")
    assert assistants, "the tutor graph is not registered"
    graph = await client.assistants.get_graph(assistants[0]["assistant_id"])
    assert {"route", "rewrite_query", "retrieve", "answer", "translate"} <= {n["id"] for n in graph["nodes"]}

    thread = await client.threads.create()
    question = {"messages": [{"role": "user", "content": "How does a PID controller use the derivative term?"}]}
    result = await client.runs.wait(thread["thread_id"], assistants[0]["assistant_id"], input=question)

    answer = result["messages"][-1]
    assert answer["type"] == "ai" and re.search(r"\[\d\]", answer["content"]), answer["content"]
    assert result["passages"][0]["path"] == "02-motion/03-pid-control.md" and result["citations"]

    follow = {"messages": [{"role": "user", "content": "and what does the integral term do?"}]}
    again = await client.runs.wait(thread["thread_id"], assistants[0]["assistant_id"], input=follow)
    assert again["turn"] == "follow_up" and len(again["messages"]) == 4
