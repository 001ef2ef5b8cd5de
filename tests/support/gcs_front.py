"""TensorFlow's own GCS file system on a local Cloud Storage emulator.

TensorFlow's `gs://` support (tf.io.gfile, TFRecordDataset, SavedModel, tf.summary, and
through them Keras and KerasTuner) talks to `https://www.googleapis.com` and
`https://storage.googleapis.com`; those endpoints are compiled in and no environment
variable moves them. So a workload is run with:

- a private mount namespace (`unshare -m`) whose bind-mounted `/etc/hosts` sends those
  names to a loopback address (only the workload sees it; the host's file is untouched);
- a TLS front on that address, port 443, with a certificate from a CA made for the test
  and trusted through `CURL_CA_BUNDLE` (TensorFlow's libcurl honours it) and
  `REQUESTS_CA_BUNDLE` (google-cloud-storage's `requests` does);
- no credentials: `GOOGLE_APPLICATION_CREDENTIALS` unset, an empty `HOME` (no gcloud
  application-default file) and `NO_GCE_CHECK=true`, so TensorFlow's GoogleAuthProvider
  skips the metadata server and sends an empty bearer token, as for public objects;
- the `gcp-storage-emulator` package behind the front, over plain HTTP.

The front fixes two things TensorFlow does that the emulator does not expect:

- uploads carry both `Transfer-Encoding: chunked` and `Content-Length`; the emulator
  believes `Content-Length` and would store the chunk framing, so the front de-chunks;
- an empty upload (how TensorFlow makes directory markers) has no body; the front
  answers a single-request upload of nothing itself, by creating the empty object
  through the emulator's media upload with an explicit empty body.

The front also records every request it forwards (method, host, path), so a test can
show that its files went through TensorFlow's GCS client and not a local path.
"""

import datetime
import http.client
import http.server
import ipaddress
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.parse

GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com", "oauth2.googleapis.com",
                "metadata.google.internal", "metadata")


def namespace_unavailable_reason():
    """Why a private mount namespace with a bind-mounted /etc/hosts cannot be made here,
    or None when it can (tried for real: `unshare -m` + `mount --bind`)."""
    if os.geteuid() != 0:
        return f"needs root for unshare -m and port 443 (running as uid {os.geteuid()})"
    if shutil.which("unshare") is None:
        return "the unshare command (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind /etc/hostname /etc/hosts && echo ok"],
        capture_output=True, text=True, timeout=30,
    )
    if probe.returncode != 0 or probe.stdout.strip() != "ok":
        return f"unshare -m + mount --bind failed here: {probe.stderr.strip() or probe.returncode}"
    return None


# --- Certificates.


def write_certificates(directory, hostnames):
    """A CA and a server certificate for `hostnames` signed by it; returns the paths
    (ca.pem, server.pem, server.key). Made with the `cryptography` package (which
    google-auth and Beam install), else with the openssl command."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return _write_certificates_with_openssl(directory, hostnames)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2))

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("s140 test CA")).issuer_name(name("s140 test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(validity[0]).not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder().subject_name(name(hostnames[0])).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(validity[0]).not_valid_after(validity[1])
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = [os.path.join(directory, n) for n in ("ca.pem", "server.pem", "server.key")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(server.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def _write_certificates_with_openssl(directory, hostnames):
    ca, cert, key = (os.path.join(directory, n) for n in ("ca.pem", "server.pem", "server.key"))
    ca_key, request, extensions = (os.path.join(directory, n) for n in ("ca.key", "server.csr", "server.ext"))
    with open(extensions, "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{h}" for h in hostnames) + "\nextendedKeyUsage=serverAuth\n")
    for command in (
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=s140 test CA"],
        ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", request, "-subj", f"/CN={hostnames[0]}"],
        ["openssl", "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", extensions],
    ):
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    return ca, cert, key


# --- The front.


def _read_body(handler):
    """The request body, de-chunked when it is chunked whatever Content-Length says."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        body = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            body += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _patch_empty_upload(method, path, headers, body):
    """An empty media upload (a directory marker) as the same upload in multipart form:
    the emulator reads an empty body as "no data" and fails on it, while a multipart
    body with an empty part stores an empty object."""
    parts = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(parts.query)
    if body or method != "POST" or query.get("uploadType") != ["media"]:
        return path, headers, body
    boundary = "s140-empty-upload"
    metadata = json.dumps({"name": query["name"][0]})
    body = (
        f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n"
        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n\r\n--{boundary}--\r\n"
    ).encode()
    query["uploadType"] = ["multipart"]
    path = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, doseq=True)))
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    headers["Content-Type"] = f"multipart/related; boundary={boundary}"
    return path, headers, body


class TlsFront:
    """HTTPS on (`address`, 443) forwarding to the emulator on 127.0.0.1:`upstream_port`."""

    def __init__(self, address, upstream_port, certfile, keyfile):
        self.address = address
        self.upstream_port = upstream_port
        self.requests = []  # (method, host, path)
        self.authorizations = set()  # Authorization headers seen (None: none sent)
        self.dechunked = 0  # chunked requests that also said Content-Length
        self.errors = []  # (method, path, error) of requests the emulator failed
        self._lock = threading.Lock()
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: without TCP_NODELAY, Nagle and the
            # client's delayed ACK add ~40 ms to every response.
            disable_nagle_algorithm = True

            def _handle(self):
                chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
                body = _read_body(self)
                with front._lock:
                    front.requests.append((self.command, self.headers.get("Host", ""), self.path))
                    front.authorizations.add(self.headers.get("Authorization"))
                    front.dechunked += chunked and "Content-Length" in self.headers
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("transfer-encoding", "content-length", "connection", "expect")}
                path, headers, body = _patch_empty_upload(self.command, self.path, headers, body)
                try:
                    status, response_headers, data = front.forward(self.command, path, headers, body)
                except (OSError, http.client.HTTPException) as error:
                    # Said once, here, instead of TensorFlow retrying a dead request.
                    with front._lock:
                        front.errors.append((self.command, self.path, repr(error)))
                    status, response_headers, data = 502, [], f"emulator failed: {error!r}".encode()
                self.send_response(status)
                for key, value in response_headers:
                    if key.lower() == "location":
                        # The emulator builds session URLs from the Host header, as
                        # http://; TensorFlow must come back here, over TLS.
                        value = value.replace("http://", "https://", 1)
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((address, 443), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def forward(self, method, path, headers, body):
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for key, value in headers.items():
                upstream.putheader(key, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders()
                    if k.lower() not in ("transfer-encoding", "connection", "content-length")]
            return response.status, kept, data
        finally:
            upstream.close()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def bind_front(upstream_port, certfile, keyfile, attempts=20):
    """A TlsFront on a random loopback address (all of 127/8 is loopback on Linux), so
    parallel test runs and any service on 127.0.0.1:443 do not collide."""
    rng = random.Random()
    for _ in range(attempts):
        address = str(ipaddress.IPv4Address("127.0.0.0") + rng.randrange(2 << 16, 1 << 24))
        try:
            return TlsFront(address, upstream_port, certfile, keyfile)
        except OSError:
            continue
    raise OSError(f"Expected a free port 443 on some 127.x.y.z address; {attempts} tries failed")


# --- The emulator and the whole environment.


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GcsEnvironment:
    """The emulator, the front, the hosts file and the workload environment.

    `run`/`popen` start a command in its own mount namespace where Google's storage
    hostnames resolve to the front. `client` is a google-cloud-storage client on the
    emulator directly, for the test's own uploads and checks.
    """

    def __init__(self, directory, bucket):
        from gcp_storage_emulator.server import create_server

        self.directory = directory
        self.bucket_name = bucket
        self.emulator_port = free_port()
        self.emulator = create_server("127.0.0.1", self.emulator_port, in_memory=True, default_bucket=bucket)
        self.emulator.start()
        self.ca, cert, key = write_certificates(directory, list(GOOGLE_HOSTS))
        self.front = bind_front(self.emulator_port, cert, key)
        self.hosts_file = os.path.join(directory, "hosts")
        with open("/etc/hosts") as original, open(self.hosts_file, "w") as hosts:
            hosts.write(original.read().rstrip("\n") + "\n")
            hosts.write(f"{self.front.address} {' '.join(GOOGLE_HOSTS)}\n")
        self._client = None
        self.home = os.path.join(directory, "home")
        os.makedirs(self.home, exist_ok=True)

    def close(self):
        self.front.close()
        self.emulator.stop()

    def env(self, base=None, **extra):
        """The workload's environment: the test CA, no credentials, no GCE probe."""
        env = dict(os.environ if base is None else base)
        for name in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GOOGLE_AUTH_TOKEN_FOR_TESTING",
                     "CLOUDSDK_CONFIG", "TF_CONFIG", "CLUSTER_SPEC"):
            env.pop(name, None)
        for name in [n for n in env if n.startswith(("AIP_", "KERASTUNER_"))]:
            env.pop(name)
        # REQUESTS_CA_BUNDLE: the package's own Cloud Storage client (the directory lock,
        # common/dir_lock.py) reaches the same front through `requests`.
        env.update(CURL_CA_BUNDLE=self.ca, REQUESTS_CA_BUNDLE=self.ca, NO_GCE_CHECK="true", HOME=self.home,
                   TF_CPP_MIN_LOG_LEVEL="2")
        env.update(extra)
        return env

    def command(self, argv):
        """`argv` inside a private mount namespace with the test hosts file."""
        return ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', self.hosts_file, *argv]

    def popen(self, argv, env, **kwargs):
        return subprocess.Popen(self.command(argv), env=env, **kwargs)

    def run(self, argv, env, timeout, **kwargs):
        return subprocess.run(self.command(argv), env=env, timeout=timeout, capture_output=True, text=True, **kwargs)

    def client(self):
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test", credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{self.emulator_port}"},
        )

    def upload_dir(self, local_dir, prefix):
        """Every file under `local_dir` to gs://BUCKET/`prefix`/..., metadata.json last."""
        bucket = self.client().bucket(self.bucket_name)
        files = sorted(
            os.path.relpath(os.path.join(root, name), local_dir)
            for root, _, names in os.walk(local_dir) for name in names
        )
        files.sort(key=lambda rel: rel == "metadata.json")
        for rel in files:
            bucket.blob(f"{prefix}/{rel}").upload_from_filename(os.path.join(local_dir, rel))
        return f"gs://{self.bucket_name}/{prefix}"

    def names(self, prefix):
        """Object names under gs://BUCKET/`prefix`/, relative to it."""
        blobs = self.client().list_blobs(self.bucket_name, prefix=prefix.rstrip("/") + "/")
        return sorted(blob.name[len(prefix.rstrip("/")) + 1:] for blob in blobs)

    def read(self, name):
        return self.client().bucket(self.bucket_name).blob(name).download_as_bytes()

    def exists(self, name):
        return self.client().bucket(self.bucket_name).blob(name).exists()
