"""A local HTTP stand-in for the Vertex AI REST API, for tests that send requests with
the real aiplatform_v1 clients (REST transport, `api_endpoint="http://127.0.0.1:PORT"`).

It records every request and answers from a list of routes: (HTTP method, regular
expression on the path without the query, responder). A responder gets the decoded
JSON body (None for GET) and the path match, and returns the JSON to send back. The
default route answers POST .../customJobs the way Vertex AI does: the job with a name
and a state. Long-running methods (models:upload, endpoints, :deployModel) answer with
a finished Operation: `operation(response_type, response)`.

Import the `stand_in` fixture into a test module (`from vertex_stand_in import stand_in`)
and add routes with `stand_in.route(...)`. `parse_strictly` and `run_cli` are the checks
every command's test makes: a body parses into its proto with no unknown field, and
s140-submit's exit code and output.
"""

import http.server
import io
import json
import re
import threading

import pytest

CREATE_TIME = "2026-11-01T12:00:00Z"


def created_resource(body, match, *, resource_id="1234567890", state="JOB_STATE_PENDING"):
    """A create call's answer: the body with name = <collection path>/<id>, state, createTime."""
    collection = match.string.removeprefix("/v1/")
    return {**body, "name": f"{collection}/{resource_id}", "state": state, "createTime": CREATE_TIME}


def operation(response_type, response, *, name="projects/p/locations/us-central1/operations/1"):
    """A finished google.longrunning.Operation whose result is `response` (REST JSON) of
    the aiplatform.v1 message `response_type`, e.g. "UploadModelResponse"."""
    return {
        "name": name,
        "done": True,
        "response": {"@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{response_type}", **response},
    }


class StandIn:
    def __init__(self):
        self.requests = []  # (path with query, JSON body or None, headers), in order
        self.methods = []  # the HTTP method of each request
        self.routes = [("POST", re.compile(r"/v1/.+/customJobs"), created_resource)]
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                stand_in.requests.append((self.path, body, dict(self.headers)))
                stand_in.methods.append(method)
                path = self.path.split("?")[0]
                for route_method, pattern, responder in reversed(stand_in.routes):
                    match = pattern.fullmatch(path)
                    if route_method == method and match:
                        self._send(200, responder(body, match))
                        return
                self._send(404, {"error": {"code": 404, "message": f"no route for {method} {path}",
                                           "status": "NOT_FOUND"}})

            def _send(self, status, answer):
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                self._answer("POST")

            def do_GET(self):
                self._answer("GET")

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, method, path_pattern, responder):
        """Answers `method` on paths matching `path_pattern` with responder(body, match);
        later routes win over earlier ones."""
        self.routes.append((method, re.compile(path_pattern), responder))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    pytest.importorskip("google.cloud.aiplatform_v1", reason="the cloud extra installs google-cloud-aiplatform")
    server = StandIn()
    yield server
    server.close()


@pytest.fixture
def anonymous():
    """Credentials that need no Google account (the stand-in checks none)."""
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()


def parse_strictly(proto_type_name, body):
    """`body` (REST JSON dict) as the aiplatform_v1 message; an unknown field fails."""
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")
    return getattr(aiplatform_v1, proto_type_name).from_json(json.dumps(body), ignore_unknown_fields=False)


def run_cli(argv, **kwargs):
    """(exit code, stdout) of s140-submit with `argv`."""
    from cloud import __main__ as cli

    out = io.StringIO()
    return cli.main(argv, out=out, **kwargs), out.getvalue()
