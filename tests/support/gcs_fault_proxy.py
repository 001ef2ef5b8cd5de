"""A proxy in front of the gcp-storage-emulator: injects chosen faults, records every
request, and (with `preconditions=True`) evaluates `ifGenerationMatch` as Cloud Storage
does, which the emulator does not: a write or delete whose generation does not match
the object's current one (0: must not exist) gets 412."""

import http.client
import http.server
import json
import re
import socket
import threading
import urllib.parse


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FaultProxy:
    """Forwards HTTP requests to the emulator; the first `count` requests matching
    `predicate(method, path, query)` get `status` instead. Records every request."""

    def __init__(self, upstream_port, *, preconditions=False):
        self.upstream_port = upstream_port
        self.preconditions = preconditions
        self.requests = []  # (method, path, query dict, forwarded?)
        self.faults = []  # [predicate, status, remaining]
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parsed = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parsed.query)
                status = proxy._fault_for(self.command, parsed.path, query)
                if status is None and proxy.preconditions and "ifGenerationMatch" in query:
                    status = proxy._precondition(parsed.path, query, body)
                with proxy._lock:
                    proxy.requests.append((self.command, parsed.path, query, status is None))
                if status is not None:
                    payload = json.dumps({"error": {"code": status, "message": "injected"}}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                # The Host header is kept: the emulator builds media links from it,
                # and those must lead back through this proxy too.
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in headers.items():
                    upstream.putheader(key, value)
                upstream.endheaders(body)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() in ("transfer-encoding", "connection", "content-length", "location"):
                        continue
                    self.send_header(key, value)
                location = response.getheader("Location")
                if location:  # resumable session URLs must come back through the proxy
                    self.send_header("Location", location.replace(
                        f":{proxy.upstream_port}", f":{proxy.port}"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _fault_for(self, method, path, query):
        with self._lock:
            for fault in self.faults:
                predicate, status, remaining = fault
                if remaining > 0 and predicate(method, path, query):
                    fault[2] -= 1
                    return status
        return None

    def inject(self, predicate, status, count=1):
        self.faults.append([predicate, status, count])

    def uploads(self):
        return [r for r in self.requests if r[1].startswith("/upload/")]

    def _precondition(self, path, query, body):
        """412 when the request's ifGenerationMatch is not the object's generation."""
        if path.startswith("/upload/"):  # the name is in the query or the multipart metadata
            bucket = path.split("/b/")[1].split("/")[0]
            named = query.get("name") or re.findall(rb'"name": ?"([^"]+)"', body)[:1]
            name = named[0].decode() if isinstance(named[0], bytes) else named[0]
        else:
            bucket, name = path.split("/b/")[1].split("/o/")
            name = urllib.parse.unquote(name)
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        upstream.request("GET", f"/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}")
        response = upstream.getresponse()
        found = json.loads(response.read() or b"{}") if response.status == 200 else {}
        upstream.close()
        return None if int(found.get("generation", 0)) == int(query["ifGenerationMatch"][0]) else 412
