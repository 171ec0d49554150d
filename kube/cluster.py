"""The only module that talks to Kubernetes: one Gateway for every request (timeouts, retries, one-line errors).

Requests are plain REST calls over urllib3 with the kubeconfig's credentials (kube/kubeconfig.py), and answers
are read as JSON straight into what the caller needs: no client models are built, so a command pays neither
the import of the generated client nor its deserialization. Only `exec` (the websocket of `make copy`) uses
the official client.
"""
from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import builtins
from typing import Any, Callable, Iterator, Literal, Mapping
from urllib.parse import quote, urlencode

from . import kubeconfig
from .errors import AlreadyExists, ClusterError, NotFound
from .settings import Project

RETRY_STATUSES = (429, 500, 502, 503, 504)
PAGE = 500                     # items per list page, as kubectl asks
ObjectKind = Literal["Job", "Pod", "Secret", "ConfigMap", "Event", "Node", "Service", "ServiceAccount", "Role",
                     "RoleBinding", "PyTorchJob"]


@dataclass(frozen=True)
class Resource:
    prefix: str                # /api/v1 or /apis/<group>/<version>
    plural: str
    namespaced: bool = True


KINDS: dict[str, Resource] = {
    "Job": Resource("/apis/batch/v1", "jobs"), "Pod": Resource("/api/v1", "pods"),
    "Secret": Resource("/api/v1", "secrets"), "ConfigMap": Resource("/api/v1", "configmaps"),
    "Event": Resource("/api/v1", "events"), "Node": Resource("/api/v1", "nodes", False),
    "Service": Resource("/api/v1", "services"), "ServiceAccount": Resource("/api/v1", "serviceaccounts"),
    "Role": Resource("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": Resource("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "PyTorchJob": Resource("/apis/kubeflow.org/v1", "pytorchjobs")}


class _Expired(Exception):
    """A list's continue token expired (410): the list starts again."""


class Gateway:
    """Every API request goes through `request`: a connect and a read timeout on each, retries bounded in time."""

    def __init__(self, namespace: str, workers: int = 8, timeout: float = 30.0, connect_timeout: float = 10.0,
                 retry_seconds: float = 60.0, backoff: float = 0.25,
                 credentials: kubeconfig.Credentials | None = None) -> None:
        import urllib3
        self.namespace = namespace
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.retry_seconds, self.backoff = retry_seconds, backoff
        self.calls = 0
        self.on_retry: Callable[[str], None] | None = None      # told once when a call starts being retried
        self._told = False
        self._lock = threading.Lock()
        creds = credentials or kubeconfig.load()
        self.credentials = creds
        self.host = creds.server
        pool: dict[str, Any] = {"num_pools": 4, "maxsize": max(workers, 4), "retries": False, "block": False}
        if creds.server.startswith("https"):
            pool.update(cert_reqs="CERT_REQUIRED" if creds.verify else "CERT_NONE", ca_certs=creds.ca_file,
                        cert_file=creds.cert_file, key_file=creds.key_file)
            if creds.tls_server_name:
                pool["server_hostname"] = creds.tls_server_name
            if not creds.verify:
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._pool = urllib3.ProxyManager(creds.proxy, **pool) if creds.proxy else urllib3.PoolManager(**pool)
        self._headers = {"Accept": "application/json", "User-Agent": "kube-toolbox"}
        if creds.authorization:
            self._headers["Authorization"] = creds.authorization

    @classmethod
    def for_project(cls, project: Project, workers: int = 8) -> Gateway:
        return cls(project.namespace, workers=workers, timeout=project.api_timeout,
                   connect_timeout=project.api_connect_timeout, retry_seconds=project.api_retry_seconds)

    # --- one request ---------------------------------------------------------------------------------------------
    def request(self, what: str, method: str, path: str, query: Mapping[str, Any] | None = None,
                body: Any = None, stream: bool = False, content_type: str = "application/json") -> Any:
        """One API call, retried on 429/5xx and lost connections until `retry_seconds`; the urllib3 response
        (2xx only) is returned unread when `stream`, else read."""
        import urllib3
        url = self.host + path + ("?" + urlencode(query) if query else "")
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        timeout = urllib3.Timeout(connect=self.connect_timeout, read=None if stream else self.timeout)
        deadline = time.monotonic() + self.retry_seconds
        attempt = 0
        while True:
            with self._lock:
                self.calls += 1
            delay: float | None = None
            try:
                response = self._pool.request(method, url, body=data, headers=headers, timeout=timeout,
                                              preload_content=not stream, redirect=False)
                if response.status < 300:
                    return response
                if stream:
                    response.read()
                failure = self._error(what, response.status, response.data, response.reason)
                if response.status not in RETRY_STATUSES:
                    raise failure
                retry_after = response.headers.get("Retry-After")
                delay = min(float(retry_after), 5.0) if retry_after and retry_after.isdigit() else None
                cause: Exception = failure
            except (urllib3.exceptions.HTTPError, OSError) as err:
                cause = err
                failure = ClusterError(f"cannot reach the Kubernetes API server at {self.host} ({what}): "
                                       f"{self._describe(err)}")
            delay = self.backoff * 2 ** min(attempt, 5) if delay is None else delay
            if time.monotonic() + delay > deadline:
                raise failure from (None if cause is failure else cause)
            if attempt == 1 and self.on_retry and not self._told:
                self._told = True
                self.on_retry(f"{failure}; retrying for up to {self.retry_seconds:g} s (api_retry_seconds)")
            attempt += 1
            time.sleep(delay)

    def _describe(self, err: Exception) -> str:
        import urllib3
        reason = getattr(err, "reason", None) or err
        text = str(reason)
        if "refused" in text:
            return "connection refused"
        if isinstance(reason, urllib3.exceptions.ReadTimeoutError) or "Read timed out" in text:
            return f"no answer within {self.timeout:g} s (api_timeout), retried for {self.retry_seconds:g} s"
        if isinstance(reason, urllib3.exceptions.ConnectTimeoutError) or "timed out" in text:
            return f"no connection within {self.connect_timeout:g} s (api_connect_timeout)"
        if isinstance(reason, urllib3.exceptions.SSLError):
            return f"TLS error: {text.splitlines()[0][:200]}"
        return type(reason).__name__

    def _error(self, what: str, status: int, raw: bytes, reason: str | None) -> ClusterError:
        try:
            body = json.loads(raw or b"{}")
        except (TypeError, ValueError):
            body = {}
        body = body if isinstance(body, dict) else {}
        message = body.get("message") or reason or ""
        if status == 404:
            return NotFound(f"{what}: not found", status)
        if status == 409:
            return AlreadyExists(f"{what}: already exists", status)
        if status == 410:
            return ClusterError(f"{what}: expired: {message}", status)
        if status == 401:
            return ClusterError(f"{what}: unauthorized: the kubeconfig credentials were refused", status)
        if status == 403 and "exceeded quota" in message:
            return ClusterError(f"{what}: quota exceeded in namespace {self.namespace}: {message}", status)
        if status == 403:
            return ClusterError(f"{what}: forbidden in namespace {self.namespace} (RBAC): {message}", status)
        if status == 422:
            causes = (body.get("details") or {}).get("causes") or []
            fields = "; ".join(f"{c.get('field')}: {c.get('message')}" for c in causes if c.get("field"))
            return ClusterError(f"{what}: invalid: {fields or message}", status)
        return ClusterError(f"{what}: API error {status}: {message}", status)

    def _path(self, kind: str, name: str | None = None, namespaced: bool = True) -> str:
        res = KINDS[kind]
        path = res.prefix + (f"/namespaces/{quote(self.namespace)}" if res.namespaced and namespaced else "")
        return path + f"/{res.plural}" + (f"/{quote(name)}" if name is not None else "")

    # --- what the server offers ------------------------------------------------------------------------------------
    def version(self) -> tuple[int, int]:
        """The server's Kubernetes version (major, minor); providers write minors such as `33+`."""
        found = json.loads(self.request("get the server version", "GET", "/version").data)
        digits = [re.sub(r"\D.*", "", str(found.get(k) or "")) for k in ("major", "minor")]
        return (int(digits[0] or 0), int(digits[1] or 0))

    def serves(self, kind: ObjectKind) -> bool:
        """Is the kind's resource in the server's discovery (a custom resource may not be installed)?"""
        res = KINDS[kind]
        try:
            found = json.loads(self.request(f"discover {res.prefix}", "GET", res.prefix).data)
        except NotFound:
            return False
        return any(r.get("name") == res.plural for r in found.get("resources") or [])

    # --- the verbs -------------------------------------------------------------------------------------------------
    def get(self, kind: ObjectKind, name: str) -> dict:
        return json.loads(self.request(f"get {kind} '{name}'", "GET", self._path(kind, name)).data)

    def list(self, kind: ObjectKind, selector: str | None = None, field_selector: str | None = None,
             namespaced: bool = True, shape: Callable[[dict], Any] | None = None) -> builtins.list[Any]:
        """Every object of a kind (one call per page of 500; the next page is fetched while this one is read),
        each passed through `shape` (keep only what the caller reads) as its page arrives."""
        for _ in range(3):
            try:
                return self._list(kind, selector, field_selector, namespaced, shape)
            except _Expired:
                continue                            # the snapshot expired between pages: list again
        raise ClusterError(f"list {KINDS[kind].plural}: the list kept expiring between pages; try again", 410)

    def _list(self, kind: str, selector: str | None, field_selector: str | None, namespaced: bool,
              shape: Callable[[dict], Any] | None) -> builtins.list[Any]:
        path = self._path(kind, namespaced=namespaced)

        def page(token: str | None) -> dict:
            query = {"limit": PAGE, **({"labelSelector": selector} if selector else {}),
                     **({"fieldSelector": field_selector} if field_selector else {}),
                     **({"continue": token} if token else {})}
            try:
                return json.loads(self.request(f"list {KINDS[kind].plural}", "GET", path, query).data)
            except ClusterError as err:
                if err.status == 410 and token:
                    raise _Expired() from err
                raise

        items: builtins.list[Any] = []
        with ThreadPoolExecutor(max_workers=1) as ahead:
            current = page(None)
            while True:
                token = (current.get("metadata") or {}).get("continue")
                following = ahead.submit(page, token) if token else None
                found = current.get("items") or []
                items.extend(map(shape, found) if shape else found)
                if following is None:
                    return items
                current = following.result()

    def create(self, manifest: Mapping[str, Any]) -> dict:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        return json.loads(self.request(f"create {kind} '{name}'", "POST", self._path(kind), body=manifest).data)

    def delete(self, kind: ObjectKind, name: str, uid: str | None = None, version: str | None = None) -> None:
        """Delete (its pods with a Job, in the background); `uid` (and `version`, a resourceVersion) make sure it
        is the object that was checked: another one, or a changed one, is a 409 Conflict."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", version)) if v}
        if preconditions:
            body["preconditions"] = preconditions
        self.request(f"delete {kind} '{name}'", "DELETE", self._path(kind, name), body=body)

    def patch(self, kind: ObjectKind, name: str, patch: Mapping[str, Any]) -> dict:
        """A JSON merge patch (RFC 7386) of one object."""
        return json.loads(self.request(f"patch {kind} '{name}'", "PATCH", self._path(kind, name), body=patch,
                                       content_type="application/merge-patch+json").data)

    def logs(self, pod: str, tail: int | None = None, follow: bool = False, container: str = "main") -> Any:
        """The text of a pod's log; with follow, an iterator of text chunks until the container ends."""
        query: dict[str, Any] = {"container": container, **({"tailLines": tail} if tail is not None else {})}
        what, path = f"logs of pod '{pod}'", self._path("Pod", pod) + "/log"
        if not follow:
            return self.request(what, "GET", path, query).data.decode(errors="replace")
        return _chunks(self.request(what, "GET", path, {**query, "follow": "true"}, stream=True))

    def exec(self, pod: str, command: builtins.list[str], stdin: bytes = b"", container: str = "main",
             timeout: float = 60.0) -> dict:
        """Run a command in a pod through the exec websocket (stdin then EOF); the status channel as a dict.
        The websocket protocol is the official client's (kubernetes.stream), configured from our credentials."""
        from kubernetes import client
        from kubernetes.stream import stream
        configuration = client.Configuration()
        creds = self.credentials
        configuration.host, configuration.verify_ssl = creds.server, creds.verify
        configuration.ssl_ca_cert, configuration.cert_file, configuration.key_file = (creds.ca_file, creds.cert_file,
                                                                                       creds.key_file)
        if creds.authorization:
            configuration.api_key = {"authorization": creds.authorization}
        if creds.proxy:
            configuration.proxy = creds.proxy
        core = client.CoreV1Api(client.ApiClient(configuration))
        with self._lock:
            self.calls += 1
        options = {"command": command, "container": container, "stdin": True, "stdout": True, "stderr": True,
                   "tty": False, "_preload_content": False, "_request_timeout": (self.connect_timeout, self.timeout)}
        try:
            try:
                resp = stream(core.connect_get_namespaced_pod_exec, pod, self.namespace, binary=True, **options)
            except TypeError:                  # clients before 30 have no binary mode (bytes are sent as such)
                resp = stream(core.connect_get_namespaced_pod_exec, pod, self.namespace, **options)
        except client.ApiException as err:
            raise self._error(f"exec in pod '{pod}'", err.status or 0, (err.body or "").encode()
                              if isinstance(err.body, str) else err.body or b"", err.reason) from err
        except Exception as err:               # the websocket library's own errors
            raise ClusterError(f"exec in pod '{pod}': {str(err).splitlines()[0] if str(err) else type(err).__name__}"
                               ) from err
        try:
            resp.write_stdin(stdin)
            if hasattr(resp, "close_channel"):
                resp.close_channel(0)          # end of stdin (v5 protocol, clients from 36 on)
            resp.run_forever(timeout=timeout)
            error = resp.read_channel(3)
        finally:
            resp.close()
        return json.loads(error) if error else {}


def _chunks(response: Any) -> Iterator[str]:
    try:
        for chunk in response.stream(1024, decode_content=True):
            yield chunk.decode(errors="replace")
    finally:
        response.release_conn()
