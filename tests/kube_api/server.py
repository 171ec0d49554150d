"""The server itself: kmock's emulator with the behaviour of a real API server (see the package docstring)."""
from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import io
import json
import re
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import kmock
from .discovery import aggregated, group_list, group_versions, openapi_doc, openapi_index, openapi_v2, resource_list, strip_unknown, unknown_fields
from .kinds import AGGREGATED, BY_KIND, BY_PLURAL, KINDS, Kind, SERVER_VERSION, STATUS_VERBS, matches_fields, matches_labels
from .objects import ApiError, bad_request, decode_protobuf, default_job, default_service, immutable_changes, invalid, json_patch, merge_patch, not_found, now, pod_qos, to_table, validate_new


class KmockHooks(kmock.KubernetesEmulator):
    """Routes each parsed request to `serve`; what it does not answer goes to kmock's own fallbacks."""

    async def serve(self, request: kmock.Request, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse | None:
        raise NotImplementedError

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        try:
            response = await self.serve(request, request._raw_request)
            return response if response is not None else await super()._handle(request)
        finally:
            del self._requests[:-12]      # a window larger than the clients' concurrency (8)


# ---------------------------------------------------------------------------------------------------------------
class Emulator(KmockHooks):
    """The API server: kmock stores the objects and the resource table; the verbs' semantics live here."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for kind in KINDS:
            self.resources[f"{kind.group}/{kind.version}/{kind.plural}".lstrip("/")] = kmock.ResourceInfo(
                kind=kind.kind, singular=kind.kind.lower(), namespaced=kind.namespaced, verbs=kind.verbs,
                shortnames=kind.short_names, categories=kind.categories,
                subresources=[s for s, _, _ in kind.subresources])
        self.defaults = {"max_page": None, "gc_delay": 0.0, "aggregated": True}
        self.latency = 0.0
        self.started = now()
        self.files = Path(tempfile.mkdtemp(prefix="kube-api-pods-"))
        self.version = 0
        self.events: list[tuple[int, str, str, dict]] = []     # (resourceVersion, plural, type, object)
        self.oldest_event = 1
        self.tick = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()
        self.clear()

    def clear(self) -> None:
        """Back to an empty cluster with the command line's settings."""
        for key in list(self.objects):
            del self.objects[key]
        self.log: list[dict] = []
        self.faults: list[dict] = []
        self.pod_logs: dict[tuple[str, str], str] = {}
        self.controller = False
        self.snapshots: dict[tuple, list[tuple[tuple[str, str], dict]]] = {}
        self.max_page: int | None = self.defaults["max_page"]
        self.gc_delay: float = self.defaults["gc_delay"]
        self.aggregated: bool = self.defaults["aggregated"]
        self.crds: frozenset[str] = frozenset()              # custom resources installed (none by default)
        self.server_version = dict(SERVER_VERSION)
        self.events.clear()
        self.oldest_event = self.version + 1
        for task in self.tasks:
            task.cancel()

    # --- storage -------------------------------------------------------------------------------------------
    def _key(self, kind: Kind, namespace: str | None, name: str) -> tuple:
        return (kmock.resource(kind.group, kind.version, kind.plural), namespace if kind.namespaced else None, name)

    def stored(self, kind: Kind, namespace: str | None, name: str) -> dict | None:
        key = self._key(kind, namespace, name)
        if key in self.objects and not self.objects[key].deleted:
            return copy.deepcopy(self.objects[key].raw)
        return None

    def all(self, kind: Kind | None = None) -> list[tuple[Kind, dict]]:
        out = []
        for (res, _ns, _name), obj in list(self.objects.items()):
            found = BY_PLURAL.get((res.group, res.version, res.plural))
            if found and (kind is None or found == kind) and not obj.deleted:
                out.append((found, obj.raw))
        return out

    def write(self, kind: Kind, obj: dict, event: str = "MODIFIED") -> dict:
        """Store a new version with the next resourceVersion and tell the watchers."""
        self.version += 1
        obj = {"apiVersion": kind.group_version, "kind": kind.kind, **obj}
        obj["metadata"]["resourceVersion"] = str(self.version)
        key = self._key(kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key not in self.objects:
            self.objects[key] = obj
        elif self.objects[key].deleted:
            self.objects[key].create(obj)
        else:
            self.objects[key].history.append(obj)
        self._emit(kind, event, obj)
        return copy.deepcopy(obj)

    def remove(self, kind: Kind, obj: dict) -> None:
        self.version += 1
        meta = obj["metadata"]
        self.objects[self._key(kind, meta.get("namespace"), meta["name"])].delete()
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self.version)
        self._emit(kind, "DELETED", gone)

    def _emit(self, kind: Kind, event: str, obj: dict) -> None:
        self.events.append((self.version, kind.plural, event, obj))
        if len(self.events) > 5000:
            del self.events[:1000]
            self.oldest_event = self.events[0][0]
        self.tick.set()
        self.tick = asyncio.Event()

    def seed(self, obj: dict) -> dict:
        """Store an object as given (status included), stamping only the metadata it lacks."""
        kind = BY_KIND[obj["kind"]]
        meta = obj.setdefault("metadata", {})
        if not kind.namespaced:
            meta.pop("namespace", None)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now())
        return self.write(kind, obj, "MODIFIED" if self.stored(kind, meta.get("namespace"), meta["name"]) else "ADDED")

    # --- dispatch ------------------------------------------------------------------------------------------
    async def serve(self, request: kmock.Request, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse | None:
        path = request.url.path
        if path.startswith("/_test/"):
            return await self.control(path[len("/_test/"):], request.data if isinstance(request.data, dict) else {})
        if self.latency:
            await asyncio.sleep(self.latency)        # a remote API server's round trip (benchmarks only)
        method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
        self.log.append({"method": method, "path": path, "query": dict(request.params)})
        for fault in self.faults:
            if fault["times"] > 0 and fault["method"] == method and re.search(fault["path"], path):
                fault["times"] -= 1
                return aiohttp.web.json_response(fault["body"], status=fault["status"], headers=fault["headers"])
        try:
            return await self._serve(request, raw, method, path)
        except ApiError as err:
            return err.response()

    async def _serve(self, request: kmock.Request, raw: aiohttp.web.BaseRequest, method: str,
                     path: str) -> aiohttp.web.StreamResponse | None:
        accept = request.headers.get("Accept", "")
        path = path.rstrip("/") or "/"                    # the official client asks for /api/, /apis/batch/v1/
        if method == "GET" and path == "/version":
            return aiohttp.web.json_response(self.server_version)
        if method == "GET" and path in ("/api", "/apis"):
            if self.aggregated and "as=APIGroupDiscoveryList" in accept and "v=v2;" in accept + ";":
                return aiohttp.web.Response(body=json.dumps(aggregated(path == "/api", self.crds)).encode(),
                                            headers={"Content-Type": AGGREGATED})
            if path == "/api":
                return aiohttp.web.json_response({"kind": "APIVersions", "versions": ["v1"],
                                                  "serverAddressByClientCIDRs": [{
                                                      "clientCIDR": "0.0.0.0/0", "serverAddress": raw.host}]})
            return aiohttp.web.json_response(group_list(self.crds))
        m = re.fullmatch(r"/api/(v1)|/apis/([^/]+/[^/]+)", path)
        if method == "GET" and m:
            gv = m.group(1) or m.group(2)
            if gv not in group_versions(self.crds):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return aiohttp.web.json_response(resource_list(gv, self.crds))
        if method == "GET" and re.fullmatch(r"/apis/[^/]+", path):
            listed = [g for g in group_list(self.crds)["groups"] if g["name"] == path.split("/")[2]]
            if not listed:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return aiohttp.web.json_response({"kind": "APIGroup", "apiVersion": "v1", **listed[0]})
        if method == "GET" and path == "/openapi/v2":
            protobuf = "protobuf" in accept
            return aiohttp.web.Response(body=openapi_v2(protobuf),
                                        content_type="application/octet-stream" if protobuf else "application/json")
        if method == "GET" and path == "/openapi/v3":
            return aiohttp.web.json_response(openapi_index(self.crds))
        if method == "GET" and path.startswith("/openapi/v3/"):
            gv = path[len("/openapi/v3/"):].split("/", 1)[-1]
            if gv not in group_versions(self.crds):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return aiohttp.web.Response(text=openapi_doc(gv), content_type="application/json")
        m = re.fullmatch(r"/api/v1/namespaces(?:/([^/]+))?", path)
        if m and method == "GET":
            return self.namespaces(m.group(1), dict(request.params), accept)
        if request.resource is None:
            return None
        res = request.resource
        kind = BY_PLURAL.get((res.group, res.version, res.plural))
        if kind is None or (request.namespace is not None and not kind.namespaced) or \
                (kind.crd and kind.plural not in self.crds):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return await self._resource(kind, request, raw, method)

    async def _resource(self, kind: Kind, request: kmock.Request, raw: aiohttp.web.BaseRequest,
                        method: str) -> aiohttp.web.StreamResponse:
        ns, name, sub, params = request.namespace, request.name, request.subresource, dict(request.params)
        verb = {"GET": "list" if name is None else "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "deletecollection" if name is None else "delete"}.get(method, "")
        if sub is None and verb not in kind.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        body = request.data
        if method in ("POST", "PUT") and "protobuf" in request.headers.get("Content-Type", ""):
            body = decode_protobuf(request.body)
        dry = params.get("dryRun") == "All"
        if name is None:
            if method == "GET" and params.get("watch") in ("true", "1"):
                return await self.watch_events(kind, ns, params, raw)
            if method == "GET":
                return self.list_page(kind, ns, params, request.headers.get("Accept", ""))
            if method == "POST":
                return self.create_object(kind, ns, body, params)
            if method == "DELETE":
                return self.delete_collection(kind, ns, params, request.data)
        elif sub is None or (sub == "status" and ("status", kind.kind, STATUS_VERBS) in kind.subresources):
            if method == "GET":
                obj = self.stored(kind, ns, name)
                if obj is None:
                    raise not_found(kind, name)
                return aiohttp.web.json_response(obj)
            if method == "PUT":
                return self.update_object(kind, ns, name, body, sub, dry)
            if method == "PATCH":
                return self.patch_object(kind, ns, name, request.data, request.headers.get("Content-Type", ""), sub,
                                         dry)
            if method == "DELETE" and sub is None:
                return self.delete_object(kind, ns, name, params, request.data)
        elif kind.kind == "Pod" and sub == "log" and method == "GET":
            return self.pod_log(ns, name, params)
        elif kind.kind == "Pod" and sub == "exec" and method in ("GET", "POST"):
            return await self.exec_tar(request, raw)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def namespaces(self, name: str | None, params: dict, accept: str) -> aiohttp.web.Response:
        """Namespaces exist implicitly: the usual three plus every one that holds an object."""
        def namespace(ns: str) -> dict:
            return {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, ns)), "resourceVersion": "1",
                                 "creationTimestamp": self.started, "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        kind = BY_KIND["Namespace"]
        if name is not None:
            obj = namespace(name)
            if "as=Table" in accept:
                return aiohttp.web.json_response(to_table(kind, [obj], {"resourceVersion": "1"}, ""))
            return aiohttp.web.json_response(obj)
        names = {"default", "kube-public", "kube-system"} | {o["metadata"]["namespace"] for _, o in self.all()
                                                            if o["metadata"].get("namespace")}
        items = [namespace(ns) for ns in sorted(names)
                 if matches_labels(namespace(ns)["metadata"]["labels"], params.get("labelSelector"))]
        for item in items:
            del item["apiVersion"], item["kind"]
        if "as=Table" in accept:
            return aiohttp.web.json_response(to_table(kind, items, {"resourceVersion": str(self.version)}, ""))
        return aiohttp.web.json_response({"kind": "NamespaceList", "apiVersion": "v1",
                                          "metadata": {"resourceVersion": str(self.version)}, "items": items})

    # --- lists and watches ---------------------------------------------------------------------------------
    def _matching(self, kind: Kind, ns: str | None, params: dict) -> list[tuple[tuple[str, str], dict]]:
        try:
            found = [((o["metadata"].get("namespace") or "", o["metadata"]["name"]), o) for _, o in self.all(kind)
                     if (ns is None or o["metadata"].get("namespace") == ns)
                     and matches_labels(o["metadata"].get("labels") or {}, params.get("labelSelector"))
                     and matches_fields(o, params.get("fieldSelector"))]
        except ValueError as err:
            raise bad_request(f"unable to parse requirement: {err}") from None
        return sorted(found, key=lambda pair: pair[0])

    def list_page(self, kind: Kind, ns: str | None, params: dict, accept: str) -> aiohttp.web.Response:
        """A page of the list: from a snapshot taken at the first page, so later pages see the same state."""
        filtered = bool(params.get("labelSelector") or params.get("fieldSelector"))
        snapshot_key = (kind.plural, ns, params.get("labelSelector"), params.get("fieldSelector"))
        token = params.get("continue")
        if token:
            try:
                state = json.loads(base64.b64decode(token))
                rv, start = int(state["rv"]), tuple(state["start"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid: the continue token cannot be decoded") from None
            items = self.snapshots.get((*snapshot_key, rv))
            if items is None:
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                               "list result. You can start a new list without the continue parameter.")
            items = [pair for pair in items if pair[0] > start]
        else:
            rv, items = self.version, self._matching(kind, ns, params)
        limit = int(params.get("limit") or 0)
        if limit and self.max_page:
            limit = min(limit, self.max_page)
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit and len(items) > limit:
            if not token:
                self.snapshots[(*snapshot_key, rv)] = items
            while len(self.snapshots) > 64:
                del self.snapshots[next(iter(self.snapshots))]
            metadata["continue"] = base64.b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": rv,
                                                                "start": list(items[limit - 1][0])}).encode()).decode()
            if not filtered:
                metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        # list items carry no type (the list says it once); serialised as they are, never modified
        objects = [{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")} for _, obj in items]
        if "as=Table" in accept:
            return aiohttp.web.json_response(to_table(kind, objects, metadata, params.get("includeObject", "")))
        return aiohttp.web.json_response({"kind": f"{kind.kind}List", "apiVersion": kind.group_version,
                                          "metadata": metadata, "items": objects})

    async def watch_events(self, kind: Kind, ns: str | None, params: dict,
                    raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Watch events as JSON lines: the current objects first unless a resourceVersion is given."""
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        since = int(params.get("resourceVersion") or 0)
        deadline = asyncio.get_running_loop().time() + float(params.get("timeoutSeconds") or 1800)

        async def send(event: str, obj: dict) -> None:
            await response.write(json.dumps({"type": event, "object": obj}).encode() + b"\n")
        if since and since + 1 < self.oldest_event:
            await send("ERROR", ApiError(410, "Expired", f"too old resource version: {since} "
                                         f"({self.oldest_event - 1})").body())
            return response
        if not since:
            for _, obj in self._matching(kind, ns, params):
                await send("ADDED", obj)
            since = self.version
        while True:
            tick = self.tick
            for rv, plural, event, obj in [e for e in self.events if e[0] > since]:
                since = rv
                if plural == kind.plural and (ns is None or obj["metadata"].get("namespace") == ns) and \
                        matches_labels(obj["metadata"].get("labels") or {}, params.get("labelSelector")) and \
                        matches_fields(obj, params.get("fieldSelector")):
                    await send(event, obj)
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return response
            try:
                await asyncio.wait_for(tick.wait(), timeout=left)
            except asyncio.TimeoutError:
                return response

    # --- writes --------------------------------------------------------------------------------------------
    def _checked_fields(self, kind: Kind, obj: dict, params: dict) -> list[str]:
        """fieldValidation: Strict refuses unknown fields (400), Warn drops them and warns; unset keeps them."""
        mode = params.get("fieldValidation")
        if mode not in ("Strict", "Warn"):
            return []
        unknown = unknown_fields(kind, obj)
        if unknown and mode == "Strict":
            raise bad_request("strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown))
        strip_unknown(obj, unknown)
        return [f'299 - "unknown field \\"{p}\\""' for p in unknown]

    def create_object(self, kind: Kind, ns: str | None, body: Any, params: dict) -> aiohttp.web.Response:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        if obj.get("kind", kind.kind) != kind.kind or obj.get("apiVersion", kind.group_version) != kind.group_version:
            raise bad_request(f"the API version in the data ({obj.get('apiVersion')}) does not match the expected "
                              f"API version ({kind.group_version}) or the kind ({obj.get('kind')}) is not "
                              f"{kind.kind}")
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            raise invalid(kind, "", [("metadata.name", "Required value: name or generateName is required")])
        warnings = self._checked_fields(kind, obj, params)
        validate_new(kind, obj)
        if self.stored(kind, ns, meta["name"]) is not None:
            raise ApiError(409, "AlreadyExists", f'{kind.qualified} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": kind.group, "kind": kind.plural})
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "managedFields"):
            meta.pop(key, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        if kind.kind in ("Job", "Pod"):
            meta["generation"] = 1
        if kind.kind == "Job":
            default_job(obj)
            obj["status"] = {}
        elif kind.kind == "Service":
            default_service(obj)
        elif kind.kind == "PyTorchJob":
            obj.pop("status", None)                    # the status subresource: not taken on create
        elif kind.kind == "Pod":
            obj["status"] = {"phase": "Pending", "qosClass": pod_qos(obj)}
        headers = {"Warning": ", ".join(warnings)} if warnings else None
        if params.get("dryRun") == "All":
            return aiohttp.web.json_response({"apiVersion": kind.group_version, "kind": kind.kind, **obj},
                                             status=201, headers=headers)
        stored = self.write(kind, obj, "ADDED")
        if kind.kind == "Job" and self.controller:
            self.spawn_pod(stored)
        return aiohttp.web.json_response(stored, status=201, headers=headers)

    def update_object(self, kind: Kind, ns: str | None, name: str, body: Any, sub: str | None,
               dry: bool) -> aiohttp.web.Response:
        current = self.stored(kind, ns, name)
        if current is None:
            raise not_found(kind, name)
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        meta = body.get("metadata") or {}
        if meta.get("name", name) != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if kind.namespaced and meta.get("namespace", ns) != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                              "request")
        return self._commit(kind, current, copy.deepcopy(body), sub, dry)

    def patch_object(self, kind: Kind, ns: str | None, name: str, body: Any, content_type: str, sub: str | None,
              dry: bool) -> aiohttp.web.Response:
        current = self.stored(kind, ns, name)
        if current is None:
            raise not_found(kind, name)
        media = content_type.split(";")[0].strip()
        if media == "application/json-patch+json" and isinstance(body, list):
            new = json_patch(current, body)
        elif media in ("application/merge-patch+json", "application/strategic-merge-patch+json") \
                and isinstance(body, dict):
            new = merge_patch(current, body)      # strategic merge: lists are replaced, not merged by key
        else:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: application/json-patch+json, "
                           "application/merge-patch+json, application/strategic-merge-patch+json")
        return self._commit(kind, current, new, sub, dry)

    def _commit(self, kind: Kind, current: dict, new: dict, sub: str | None, dry: bool) -> aiohttp.web.Response:
        """The shared end of PUT and PATCH: optimistic concurrency, immutable fields, status kept apart."""
        name = current["metadata"]["name"]
        asked = (new.get("metadata") or {}).get("resourceVersion")
        if asked and asked != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object '
                           "has been modified; please apply your changes to the latest version and try again",
                           {"name": name, "group": kind.group, "kind": kind.plural})
        has_status = any(s == "status" for s, _, _ in kind.subresources)
        if sub == "status":
            new = {**current, "status": new.get("status")}
        elif has_status:
            new["status"] = current.get("status")
            if new["status"] is None:
                del new["status"]
        meta = new.setdefault("metadata", {})
        for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "generation"):
            if key in current["metadata"]:
                meta[key] = current["metadata"][key]
            else:
                meta.pop(key, None)
        causes = immutable_changes(kind, current, new)
        if causes:
            raise invalid(kind, name, causes)
        if new.get("spec") != current.get("spec") and sub != "status" and "generation" in meta:
            meta["generation"] = current["metadata"].get("generation", 1) + 1
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        new = {"apiVersion": kind.group_version, "kind": kind.kind, **new}
        if new == current or dry:
            return aiohttp.web.json_response(new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.remove(kind, new)                  # the last finalizer is gone: the object goes too
            return aiohttp.web.json_response(new)
        return aiohttp.web.json_response(self.write(kind, new))

    # --- deletion and garbage collection -------------------------------------------------------------------
    @staticmethod
    def _delete_options(params: dict, body: Any) -> dict:
        options = dict(body) if isinstance(body, dict) else {}
        for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
            if key in params:
                options.setdefault(key, params[key] if key != "orphanDependents" else params[key] == "true")
        if "dryRun" in params:
            options.setdefault("dryRun", [params["dryRun"]])
        return options

    def delete_object(self, kind: Kind, ns: str | None, name: str, params: dict, body: Any) -> aiohttp.web.Response:
        current = self.stored(kind, ns, name)
        if current is None:
            raise not_found(kind, name)
        options = self._delete_options(params, body)
        warning = None
        if "propagationPolicy" not in options and "orphanDependents" not in options and kind.kind == "Job":
            warning = ('299 - "child pods are preserved by default when jobs are deleted; set '
                       'propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress '
                       'this warning"')
        result = self._delete_one(kind, current, options)
        return aiohttp.web.json_response(result, headers={"Warning": warning} if warning else None)

    def delete_collection(self, kind: Kind, ns: str | None, params: dict, body: Any) -> aiohttp.web.Response:
        options = self._delete_options(params, body)
        deleted = [self._delete_one(kind, obj, options) for _, obj in self._matching(kind, ns, params)]
        for obj in deleted:
            obj.pop("apiVersion", None)
            obj.pop("kind", None)
        return aiohttp.web.json_response({"kind": f"{kind.kind}List", "apiVersion": kind.group_version,
                                          "metadata": {"resourceVersion": str(self.version)}, "items": deleted})

    def _delete_one(self, kind: Kind, current: dict, options: dict) -> dict:
        """Delete now, or mark (deletionTimestamp, finalizers) and let the garbage collector finish."""
        meta = current["metadata"]
        pre = options.get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            if pre.get(field) and pre[field] != meta.get(field):
                raise ApiError(409, "Conflict", f"Precondition failed: {field.replace('uid', 'UID')} in precondition: "
                               f"{pre[field]}, {field.replace('uid', 'UID')} in object meta: {meta.get(field)}",
                               {"name": meta["name"], "group": kind.group, "kind": kind.plural})
        policy = options.get("propagationPolicy")
        if policy is None:
            orphan = options.get("orphanDependents")
            policy = "Orphan" if orphan is True or (orphan is None and kind.kind == "Job") else "Background"
        if policy not in ("Orphan", "Background", "Foreground"):
            raise bad_request(f'Unsupported value: "{policy}": supported values: "Foreground", "Background", '
                              '"Orphan"')
        current = copy.deepcopy(current)
        meta = current["metadata"]
        if "All" in (options.get("dryRun") or []) or meta.get("deletionTimestamp"):
            return current
        finalizers = list(meta.get("finalizers") or [])
        extra = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy)
        if extra and self._dependents(meta["uid"]):
            finalizers.append(extra)
        if finalizers:
            meta.update(deletionTimestamp=now(), deletionGracePeriodSeconds=0, finalizers=finalizers)
            marked = self.write(kind, current)
            if extra in finalizers:
                self._collect_later(kind, marked, policy)
            return marked
        self.remove(kind, current)
        if self._dependents(meta["uid"]):
            self._collect_later(kind, current, "Background")
        return current

    def _dependents(self, uid: str) -> list[tuple[Kind, dict]]:
        return [(k, o) for k, o in self.all() if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences")
                                                      or [])]

    def _collect_later(self, kind: Kind, owner: dict, policy: str) -> None:
        if not self.gc_delay:
            self._collect(kind, owner, policy)
            return

        async def later() -> None:
            await asyncio.sleep(self.gc_delay)
            self._collect(kind, owner, policy)
        task = asyncio.get_running_loop().create_task(later())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _collect(self, kind: Kind, owner: dict, policy: str) -> None:
        """The garbage collector's work for one owner: orphan or delete its dependents, then release it."""
        uid, live_uids = owner["metadata"]["uid"], {o["metadata"]["uid"] for _, o in self.all()}
        for dep_kind, dep in self._dependents(uid):
            dep = copy.deepcopy(dep)
            others = [r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != uid]
            if policy == "Orphan" or any(r.get("uid") in live_uids - {uid} for r in others):
                dep["metadata"]["ownerReferences"] = others
                if not others:
                    del dep["metadata"]["ownerReferences"]
                self.write(dep_kind, dep)
            else:
                self._delete_one(dep_kind, dep, {"propagationPolicy": policy})
        current = self.stored(kind, owner["metadata"].get("namespace"), owner["metadata"]["name"])
        if current is None or current["metadata"]["uid"] != uid:
            return
        finalizer = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy)
        left = [f for f in current["metadata"].get("finalizers") or [] if f != finalizer]
        if left:
            current["metadata"]["finalizers"] = left
            self.write(kind, current)
        else:
            self.remove(kind, current)

    # --- pods: the fake Job controller, logs, exec ---------------------------------------------------------
    def spawn_pod(self, job: dict) -> None:
        """What the Job controller does first: one Pending pod owned by the Job; for an Indexed Job, one per index
        up to its parallelism, named, labelled and given a host name as the controller does."""
        meta, spec = job["metadata"], job["spec"]
        template = spec["template"]
        indexed = spec.get("completionMode") == "Indexed"
        for index in range(min(spec.get("parallelism", 1), spec.get("completions", 1)) if indexed else 1):
            pod = {"metadata": {"name": f"{meta['name']}-{uuid.uuid4().hex[:5]}", "namespace": meta["namespace"],
                                "labels": dict(template["metadata"].get("labels") or {}),
                                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                                     "uid": meta["uid"], "controller": True,
                                                     "blockOwnerDeletion": True}]},
                   "spec": copy.deepcopy(template["spec"]), "status": {"phase": "Pending"}}
            if indexed:
                key = "batch.kubernetes.io/job-completion-index"
                pod["metadata"]["name"] = f"{meta['name']}-{index}-{uuid.uuid4().hex[:5]}"
                pod["metadata"]["labels"][key] = str(index)
                pod["metadata"]["annotations"] = {key: str(index)}
                pod["spec"]["hostname"] = f"{meta['name']}-{index}"
            pod["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
            self.write(BY_KIND["Pod"], pod, "ADDED")

    def pod_log(self, ns: str | None, name: str, params: dict) -> aiohttp.web.Response:
        pod = self.stored(BY_KIND["Pod"], ns, name)
        if pod is None:
            raise not_found(BY_KIND["Pod"], name)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        if params.get("container") and containers and params["container"] not in containers:
            raise bad_request(f"container {params['container']} is not valid for pod {name}")
        container = params.get("container") or (containers[0] if containers else "")
        states = {c.get("name"): c.get("state") or {} for c in (pod.get("status") or {}).get("containerStatuses") or []}
        waiting = (states.get(container) or {}).get("waiting")
        if ((pod.get("status") or {}).get("phase") == "Pending" or waiting) and (ns or "", name) not in self.pod_logs:
            reason = (waiting or {}).get("reason") or "ContainerCreating"
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        text = self.pod_logs.get((ns or "", name), "")
        tail = params.get("tailLines")
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-int(tail):]) if int(tail) > 0 else ""
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def exec_tar(self, request: kmock.Request, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Exec over a websocket (v5/v4 channel protocol). Understood: `tar xmf - [-C DIR]`, alone (it reads stdin
        to its end: v5's close of stdin or the socket's) or as `sh -c 'head -c N | tar xmf - [-C DIR]'` (it reads
        N bytes, as on a real node, which v4 clients need: they cannot close stdin). The archive is unpacked
        into this pod's directory under `self.files`, where tests read it back."""
        commands = raw.query.getall("command", [])
        wanted, tar_args = None, commands
        if commands[:2] == ["sh", "-c"] and len(commands) == 3:
            m = re.fullmatch(r"head -c (\d+) \| (tar xmf -(?: -C \S+)?)", commands[2])
            if m:
                wanted, tar_args = int(m.group(1)), m.group(2).split()
        ws = aiohttp.web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        await ws.prepare(raw)
        stdin = bytearray()
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data:
                if msg.data[0] == 0:
                    stdin += msg.data[1:]
                elif msg.data[0] == 255 and msg.data[1:2] == b"\x00":       # v5: stdin closed
                    break
                if wanted is not None and len(stdin) >= wanted:
                    break
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                break
        status = {"metadata": {}, "status": "Success"}
        if tar_args[:3] == ["tar", "xmf", "-"] and "-C" in tar_args:
            target = self.files / (request.name or "") / tar_args[tar_args.index("-C") + 1].lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            data = bytes(stdin[:wanted] if wanted is not None else stdin)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                tar.extractall(target, filter="data")
        else:
            status = {"metadata": {}, "status": "Failure", "message": f"unsupported command {commands}"}
        if not ws.closed:
            await ws.send_bytes(b"\x03" + json.dumps(status).encode())
            await ws.close()
        return ws

    # --- test controls -------------------------------------------------------------------------------------
    async def control(self, action: str, data: dict) -> aiohttp.web.Response:
        """What a test may do besides the API: seed objects, inject faults, set logs and server behaviour."""
        if action == "reset":
            self.clear()
        elif action == "seed":
            self.seed(data)
        elif action == "seed-many":
            for obj in data.get("items") or []:
                self.seed(obj)
        elif action == "fault":
            self.faults.append({"method": data["method"].upper(), "path": data["path"], "status": data["status"],
                                "times": data.get("times", 1), "headers": data.get("headers") or {},
                                "body": data.get("body") or {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                             "code": data["status"], "message": "injected fault"}})
        elif action == "log":
            self.pod_logs[(data["namespace"], data["pod"])] = data["text"]
        elif action == "pod-file":
            path = self.files / data["pod"] / data["path"].lstrip("/")
            return aiohttp.web.json_response({"text": path.read_text() if path.is_file() else None})
        elif action == "controller":
            self.controller = bool(data.get("on"))
        elif action == "paging":
            self.max_page = data.get("max_page") or None
        elif action == "gc":
            self.gc_delay = float(data.get("delay") or 0)
        elif action == "discovery":
            self.aggregated = bool(data.get("aggregated", True))
        elif action == "crd":
            known = {k.plural for k in KINDS if k.crd}
            if data.get("plural") not in known:
                return aiohttp.web.json_response({"error": f"no custom resource {data.get('plural')}"}, status=404)
            self.crds = self.crds | {data["plural"]} if data.get("on", True) else self.crds - {data["plural"]}
        elif action == "version":
            self.server_version.update(minor=str(data["minor"]),
                                       gitVersion=f"v1.{data['minor']}.0-kmock")
        elif action == "expire-lists":
            self.snapshots.clear()
        elif action == "requests":
            return aiohttp.web.json_response(self.log)
        elif action == "clear-requests":
            self.log.clear()
        elif action == "objects":
            kind = next(k for k in KINDS if k.plural == data["plural"])
            ns = data.get("namespace") if kind.namespaced else None
            return aiohttp.web.json_response([o for _, o in self._matching(kind, ns, {})])
        else:
            return aiohttp.web.json_response({"error": f"unknown control {action}"}, status=404)
        return aiohttp.web.json_response({"ok": True})


async def serve(port: int, latency_ms: float = 0.0, max_page: int | None = None, gc_delay: float = 0.0) -> None:
    emulator = Emulator()
    emulator.latency = latency_ms / 1000
    emulator.defaults.update(max_page=max_page, gc_delay=gc_delay)
    emulator.clear()
    async with emulator, kmock.Server(emulator, host="127.0.0.1", port=port):
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay every API response (benchmarks)")
    parser.add_argument("--max-page", type=int, default=None,
                        help="answer a list that has a limit with at most N items per page (shows client paging)")
    parser.add_argument("--gc-delay", type=float, default=0.0,
                        help="seconds before the garbage collector handles dependents (0: before the response)")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency_ms, args.max_page, args.gc_delay))


if __name__ == "__main__":
    main()
