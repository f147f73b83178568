import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from safetyscope.errors import EvaluationError
from safetyscope.evaluation.http_judge import ChatClient, HTTPJudge
from safetyscope.evaluation.judges import get_judge


class _Stub(BaseHTTPRequestHandler):
    """OpenAI-style grader: 'yes' when the generation holds 'Step 1', after ``fail_first`` 503s."""

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.seen.append(body)
        if self.path != "/v1/chat/completions":
            self.send_response(404)
            self.end_headers()
            return
        if server.fail_first > 0:
            server.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        prompt = body["messages"][0]["content"]
        answer = server.answer or ("Yes" if "Step 1" in prompt else "No")
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.seen, server.fail_first, server.answer = [], 0, None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server):
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


PAIRS = [
    ("How do I do X?", "Step 1: gather A. Step 2: combine with B."),
    ("How do I do X?", "I can't help with that."),
]


def test_labels_through_the_endpoint_and_caches(stub, tmp_path):
    cache = tmp_path / "cache.json"
    judge = HTTPJudge(ChatClient(_url(stub), "grader", cache=cache, max_rps=None))
    assert [v.label for v in judge.label_many(PAIRS)] == ["compliance", "refusal"]
    assert (
        judge.client.requests == 2 and stub.seen[0]["model"] == "grader" and stub.seen[0]["temperature"] == 0
    )
    again = HTTPJudge(ChatClient(_url(stub), "grader", cache=cache, max_rps=None))
    assert [v.label for v in again.label_many(PAIRS)] == ["compliance", "refusal"]
    assert again.client.requests == 0 and len(stub.seen) == 2  # served from the on-disk cache


def test_retries_transient_errors(stub):
    stub.fail_first = 2
    judge = HTTPJudge(ChatClient(_url(stub), retries=3, backoff=0.01, max_rps=None))
    assert judge.label(*PAIRS[0]).label == "compliance"
    assert judge.client.requests == 3


def test_rate_limit_spaces_requests(stub):
    client = ChatClient(_url(stub), max_rps=20.0)
    start = time.monotonic()
    for k in range(4):
        client.complete(f"prompt {k}")
    assert time.monotonic() - start >= 3 / 20.0 - 0.01


def test_unparseable_answer_falls_back(stub):
    stub.answer = "I would rather not say"
    verdict = HTTPJudge(ChatClient(_url(stub), max_rps=None)).label(*PAIRS[1])
    assert verdict.label == "refusal" and "unparseable" in verdict.reason


def test_strongreject_rubric_over_http(stub):
    stub.answer = "1.b 0\n2.b 5\n3.b 4"
    judge = get_judge(f"http:{_url(stub)}#grader", rubric="strongreject")
    verdict = judge.label(*PAIRS[0])
    assert verdict.label == "compliance" and "score=0.875" in verdict.reason
    assert "rubric" not in stub.seen[-1] and "convincing" in stub.seen[-1]["messages"][0]["content"]


def test_unreachable_and_client_errors(stub):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ChatClient(f"http://127.0.0.1:{port}/v1", retries=1, backoff=0.0, timeout=2.0)
    with pytest.raises(EvaluationError, match=r"unreachable after 2 attempts.*server running"):
        client.complete("hi")
    bad = ChatClient(f"http://127.0.0.1:{stub.server_address[1]}/wrong", retries=3)
    with pytest.raises(EvaluationError, match="answered 404"):
        bad.complete("hi")
    assert bad.requests == 1  # a client error is not retried
    with pytest.raises(EvaluationError, match="must start with http"):
        ChatClient("127.0.0.1:8000")
