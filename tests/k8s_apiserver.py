#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""A fake Kubernetes API server for tests/test_k8s.c (standard library only).

It speaks just enough of the API, over HTTPS, to exercise ferryd's list+watch
client at the protocol level:

  GET  /apis/GROUP/VERSION[/namespaces/NS]/PLURAL?limit=N&continue=T    paged list
  GET  /api/v1[/namespaces/NS]/services...      the same for the core group (Services)
  GET  ...?watch=1&resourceVersion=RV&timeoutSeconds=S                  chunked watch
  POST /api/v1/namespaces/NS/events                                     recorded Events
  GET  /api/v1/namespaces/NS/secrets/NAME                               one Secret (or 404)
  POST /api/v1/namespaces/NS/secrets          create: 201, or 409 AlreadyExists

For canary analysis over several nodes (docs/canary.md), plain objects with
optimistic concurrency (a PUT naming another resourceVersion gets 409):

  GET|PUT /apis/coordination.k8s.io/v1/namespaces/NS/leases/NAME, POST .../leases
  GET|PUT /api/v1/namespaces/NS/configmaps/NAME, POST .../configmaps
  GET  /api/v1/namespaces/NS/pods?labelSelector=K=V    pods of the scenario's
                                                       "pods" list that match

Every request needs "Authorization: Bearer TOKEN" (or a client certificate
signed by --client-ca), as the real server does. Resource versions are one
counter shared by all resources, like etcd's revision.

A control endpoint (same port, same authentication) scripts the server:

  POST /_control  {"ops": [OP, ...]}   runs the ops atomically, in order
  GET  /_control                       state: requests seen, Events posted

  OP: {"op": "put", "resource": PLURAL, "object": {...}}   ADDED or MODIFIED
      {"op": "delete", "resource": PLURAL, "namespace": NS, "name": NAME
       [, "silent": true]}                 silent: no DELETED event (a lost event)
      {"op": "bookmark", "resource": PLURAL}   BOOKMARK at the current version
      {"op": "bump"}                           advance the version (other kinds)
      {"op": "compact"[, "resource": PLURAL]}   history up to now is gone:
                            watches from older versions get 410
      {"op": "drop", "resource": PLURAL}   cut open watches mid-chunk
      {"op": "fail", "resource": PLURAL, "status": 503, "count": N
       [, "retry_after": S]}      the next N requests for PLURAL fail
      {"op": "set", "key": K, "value": V}  gone_as ("event" | "http"),
                                           events_forbidden (bool),
                                           secrets_forbidden (bool),
                                           secret_race (object: the next create of a
                                             Secret loses to this one, put first: 409)
      {"op": "put_secret", "object": {...}}    a Secret, as kubectl create would

Usage: k8s_apiserver.py --cert C --key K --token T --port-file F [--scenario S]
The scenario file is JSON: {"objects": {PLURAL: [object, ...]}, "ops": [OP]}
(ops run at start). The server binds --host (127.0.0.1; ::1 for IPv6) on a
free port and writes the port to --port-file.
"""
import argparse
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESOURCES = {
    "seldondeployments": ("machinelearning.seldon.io/v1", "SeldonDeployment"),
    "endpointslices": ("discovery.k8s.io/v1", "EndpointSlice"),
    "services": ("v1", "Service"),
}


class State:
    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 1
        # Per resource, like the API server's watch cache: a watch from a
        # version below its floor gets 410 Gone.
        self.floor = {r: 0 for r in RESOURCES}
        self.objects = {r: {} for r in RESOURCES}  # (ns, name) -> object
        self.log = []  # (seq, rv, resource, type, object)
        self.seq = 0
        self.drops = {r: 0 for r in RESOURCES}  # generation: bump to cut watches
        self.bookmarks_sent = {r: 0 for r in RESOURCES}
        self.gone_as = "event"
        self.events_forbidden = False
        self.requests = []  # {"method", "resource", "watch", "rv", "continue", ...}
        self.events = []
        self.uid = 0
        self.fail = {}  # resource -> {"status", "count", "retry_after"}
        self.secrets = {}  # (ns, name) -> Secret; not watched, get/create only
        self.secrets_forbidden = False
        self.secret_race = None  # a Secret another client "creates" just before ours
        self.plain = {}  # (plural, ns, name) -> object: leases, configmaps
        self.pods = []  # the scenario's "pods"

    def record(self, **kw):
        self.requests.append(kw)

    def put(self, resource, obj):
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        old = self.objects[resource].get(key)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        if old:
            meta["uid"] = old["metadata"]["uid"]
        else:
            self.uid += 1
            meta.setdefault("uid", "uid-%d" % self.uid)
        api_version, kind = RESOURCES[resource]
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", kind)
        self.objects[resource][key] = obj
        self.append(resource, "MODIFIED" if old else "ADDED", obj)

    def put_secret(self, obj):
        meta = obj.setdefault("metadata", {})
        self.rv += 1
        self.uid += 1
        meta["resourceVersion"] = str(self.rv)
        meta.setdefault("uid", "uid-%d" % self.uid)
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", "Secret")
        self.secrets[(meta["namespace"], meta["name"])] = obj

    def delete(self, resource, ns, name, silent=False):
        obj = self.objects[resource].pop((ns, name))
        if silent:  # a change the watch never reports: only a re-list sees it
            return
        self.rv += 1
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.append(resource, "DELETED", obj)

    def append(self, resource, typ, obj):
        self.seq += 1
        self.log.append((self.seq, self.rv, resource, typ, obj))

    def run_op(self, op):
        kind = op["op"]
        if kind == "put":
            self.put(op["resource"], op["object"])
        elif kind == "delete":
            self.delete(op["resource"], op.get("namespace", ""), op["name"],
                        op.get("silent", False))
        elif kind == "bookmark":
            api_version, k = RESOURCES[op["resource"]]
            bm = {"apiVersion": api_version, "kind": k,
                  "metadata": {"resourceVersion": str(self.rv)}}
            self.append(op["resource"], "BOOKMARK", bm)
        elif kind == "bump":
            self.rv += 1
        elif kind == "compact":
            for r in [op["resource"]] if "resource" in op else RESOURCES:
                self.floor[r] = self.rv
                self.log = [e for e in self.log if e[2] != r or e[1] > self.rv]
        elif kind == "drop":
            self.drops[op["resource"]] += 1
        elif kind == "fail":
            self.fail[op["resource"]] = {"status": op.get("status", 503),
                                         "count": op.get("count", 1),
                                         "retry_after": op.get("retry_after")}
        elif kind == "set":
            setattr(self, op["key"], op["value"])
        elif kind == "put_secret":
            self.put_secret(op["object"])
        else:
            raise ValueError("unknown op %r" % kind)


STATE = State()
TOKEN = None


def status_body(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if os.environ.get("FERRY_K8S_SERVER_DEBUG"):
            sys.stderr.write("apiserver: " + (fmt % args) + "\n")

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        auth = self.headers.get("Authorization", "")
        if auth == "Bearer " + TOKEN:
            return True
        # x509 client authentication, verified against --client-ca.
        try:
            if self.connection.getpeercert():
                return True
        except (AttributeError, ValueError):
            pass
        self.send_json(401, status_body(401, "Unauthorized", "Unauthorized"))
        return False

    def read_body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def plain_path(self, path):
        """(plural, ns, name or None) for leases and configmaps, else None."""
        parts = path.strip("/").split("/")
        if parts[:4] == ["apis", "coordination.k8s.io", "v1", "namespaces"]:
            parts = parts[4:]
        elif parts[:3] == ["api", "v1", "namespaces"]:
            parts = parts[3:]
        else:
            return None
        if len(parts) in (2, 3) and parts[1] in ("leases", "configmaps"):
            return parts[1], parts[0], parts[2] if len(parts) == 3 else None
        return None

    def plain_write(self, method, where, body):
        plural, ns, name = where
        try:
            obj = json.loads(body)
        except ValueError as e:
            self.send_json(400, status_body(400, "BadRequest", str(e)))
            return
        meta = obj.setdefault("metadata", {})
        name = name or meta.get("name")
        with STATE.cond:
            STATE.record(method=method, resource=plural, namespace=ns, name=name)
            old = STATE.plain.get((plural, ns, name))
            if method == "POST" and old is not None:
                self.send_json(409, status_body(409, "AlreadyExists", "%s exists" % name))
                return
            if method == "PUT" and old is None:
                self.send_json(404, status_body(404, "NotFound", "%s not found" % name))
                return
            want = meta.get("resourceVersion")
            if method == "PUT" and want and want != old["metadata"]["resourceVersion"]:
                self.send_json(409, status_body(409, "Conflict", "the object has been "
                                                "modified; please apply your changes to the "
                                                "latest version and try again"))
                return
            STATE.rv += 1
            meta["resourceVersion"] = str(STATE.rv)
            meta["name"] = name
            meta["namespace"] = ns
            STATE.plain[(plural, ns, name)] = obj
        self.send_json(201 if method == "POST" else 200, obj)

    def do_PUT(self):
        if not self.authorized():
            return
        where = self.plain_path(urllib.parse.urlsplit(self.path).path)
        body = self.read_body()
        if not where or not where[2]:
            self.send_json(404, status_body(404, "NotFound", "the server could not find the "
                                            "requested resource"))
            return
        self.plain_write("PUT", where, body)

    def do_POST(self):
        if not self.authorized():
            return
        path = urllib.parse.urlsplit(self.path).path
        body = self.read_body()
        where = self.plain_path(path)
        if where and not where[2]:
            self.plain_write("POST", where, body)
            return
        if path == "/_control":
            try:
                ops = json.loads(body)["ops"]
                with STATE.cond:
                    for op in ops:
                        STATE.run_op(op)
                    STATE.cond.notify_all()
            except (ValueError, KeyError) as e:
                self.send_json(400, status_body(400, "BadRequest", str(e)))
                return
            self.send_json(200, {"rv": STATE.rv})
            return
        parts = path.strip("/").split("/")
        if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
            self.create_secret(parts[3], body)
            return
        if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "events":
            with STATE.cond:
                forbidden = STATE.events_forbidden
                STATE.record(method="POST", resource="events", namespace=parts[3])
            if forbidden:
                self.send_json(403, status_body(
                    403, "Forbidden", 'events is forbidden: User "system:serviceaccount:'
                    'ferry-system:ferryd" cannot create resource "events"'))
                return
            try:
                ev = json.loads(body)
            except ValueError as e:
                self.send_json(400, status_body(400, "BadRequest", str(e)))
                return
            if ev.get("metadata", {}).get("namespace") != parts[3]:
                self.send_json(400, status_body(400, "BadRequest", "namespace mismatch"))
                return
            with STATE.cond:
                STATE.events.append(ev)
            self.send_json(201, ev)
            return
        self.send_json(404, status_body(404, "NotFound", "the server could not find the "
                                        "requested resource"))

    def forbid_secrets(self, verb, ns):
        self.send_json(403, status_body(
            403, "Forbidden", 'secrets is forbidden: User "system:serviceaccount:'
            'ferry-system:ferryd" cannot %s resource "secrets" in API group "" in the '
            'namespace "%s"' % (verb, ns)))

    def create_secret(self, ns, body):
        try:
            obj = json.loads(body)
            name = obj["metadata"]["name"]
        except (ValueError, KeyError, TypeError) as e:
            self.send_json(400, status_body(400, "BadRequest", str(e)))
            return
        with STATE.cond:
            STATE.record(method="POST", resource="secrets", namespace=ns, name=name)
            if STATE.secrets_forbidden:
                forbidden = True
            else:
                forbidden = False
                if STATE.secret_race is not None:
                    race, STATE.secret_race = STATE.secret_race, None
                    race = json.loads(json.dumps(race))
                    race.setdefault("metadata", {}).update(namespace=ns, name=name)
                    STATE.put_secret(race)
                exists = (ns, name) in STATE.secrets
                if not exists:
                    if obj.get("metadata", {}).get("namespace", ns) != ns:
                        self.send_json(400, status_body(400, "BadRequest",
                                                        "namespace mismatch"))
                        return
                    obj["metadata"]["namespace"] = ns
                    STATE.put_secret(obj)
        if forbidden:
            self.forbid_secrets("create", ns)
        elif exists:
            self.send_json(409, status_body(409, "AlreadyExists",
                                            'secrets "%s" already exists' % name))
        else:
            self.send_json(201, obj)

    def get_secret(self, ns, name):
        with STATE.cond:
            STATE.record(method="GET", resource="secrets", namespace=ns, name=name)
            forbidden = STATE.secrets_forbidden
            obj = STATE.secrets.get((ns, name))
        if forbidden:
            self.forbid_secrets("get", ns)
        elif obj is None:
            self.send_json(404, status_body(404, "NotFound",
                                            'secrets "%s" not found' % name))
        else:
            self.send_json(200, obj)

    def do_GET(self):
        if not self.authorized():
            return
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/_control":
            with STATE.cond:
                self.send_json(200, {"rv": STATE.rv, "floor": STATE.floor,
                                     "plain": {"/".join(k): v for k, v in STATE.plain.items()},
                                     "requests": STATE.requests, "events": STATE.events,
                                     "bookmarks_sent": STATE.bookmarks_sent,
                                     "secrets": {"%s/%s" % k: v
                                                 for k, v in STATE.secrets.items()}})
            return
        where = self.plain_path(url.path)
        if where and where[2]:
            with STATE.cond:
                STATE.record(method="GET", resource=where[0], namespace=where[1],
                             name=where[2])
                obj = STATE.plain.get(where)
            if obj is None:
                self.send_json(404, status_body(404, "NotFound", "%s \"%s\" not found" %
                                                (where[0], where[2])))
            else:
                self.send_json(200, obj)
            return
        parts = url.path.strip("/").split("/")
        if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
            self.get_secret(parts[3], parts[5])
            return
        if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
            sel = dict(kv.split("=", 1) for kv in query.get("labelSelector", "").split(",")
                       if "=" in kv)
            with STATE.cond:
                STATE.record(method="GET", resource="pods", namespace=parts[3])
                items = [p for p in STATE.pods
                         if p.get("metadata", {}).get("namespace") == parts[3] and
                         all(p["metadata"].get("labels", {}).get(k) == v
                             for k, v in sel.items())]
            self.send_json(200, {"apiVersion": "v1", "kind": "PodList",
                                 "metadata": {"resourceVersion": str(STATE.rv)},
                                 "items": items})
            return
        # apis GROUP VERSION [namespaces NS] PLURAL, or the core group:
        # api VERSION [namespaces NS] PLURAL (as "apis" with an empty group)
        if parts[:1] == ["api"]:
            parts = ["apis", ""] + parts[1:]
        ns = None
        if len(parts) == 6 and parts[3] == "namespaces":
            ns = parts[4]
            parts = parts[:3] + parts[5:]
        if len(parts) != 4 or parts[0] != "apis" or parts[3] not in RESOURCES or \
                "/".join(p for p in parts[1:3] if p) != RESOURCES[parts[3]][0]:
            self.send_json(404, status_body(404, "NotFound", "the server could not find "
                                            "the requested resource"))
            return
        resource = parts[3]
        with STATE.cond:
            fail = STATE.fail.get(resource)
            if fail and fail["count"] > 0:
                fail["count"] -= 1
                STATE.record(method="GET", resource=resource,
                             watch=query.get("watch") in ("1", "true"),
                             namespace=ns, failed=fail["status"],
                             rv=query.get("resourceVersion", ""))
            else:
                fail = None
        if fail:
            data = json.dumps(status_body(fail["status"], "ServiceUnavailable",
                                          "injected failure")).encode()
            self.send_response(fail["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if fail["retry_after"] is not None:
                self.send_header("Retry-After", str(fail["retry_after"]))
            self.end_headers()
            self.wfile.write(data)
            return
        if query.get("watch") in ("1", "true"):
            self.watch(resource, ns, query)
        else:
            self.list(resource, ns, query)

    def list(self, resource, ns, query):
        limit = int(query.get("limit", "0") or 0)
        cont = query.get("continue", "")
        with STATE.cond:
            STATE.record(method="GET", resource=resource, watch=False, namespace=ns,
                         limit=limit, cont=cont)
            if cont:
                offset, rv = (int(x) for x in cont.split(":"))
                if rv < STATE.floor[resource]:
                    self.send_json(410, status_body(410, "Expired", "continue token expired"))
                    return
            else:
                offset, rv = 0, STATE.rv
            keys = sorted(k for k in STATE.objects[resource] if ns is None or k[0] == ns)
            page = keys[offset:offset + limit] if limit else keys[offset:]
            items = []
            for k in page:
                obj = json.loads(json.dumps(STATE.objects[resource][k]))
                if resource in ("endpointslices", "services"):
                    # Built-in types' list items carry no kind/apiVersion.
                    obj.pop("kind", None)
                    obj.pop("apiVersion", None)
                items.append(obj)
            meta = {"resourceVersion": str(rv)}
            if limit and offset + limit < len(keys):
                meta["continue"] = "%d:%d" % (offset + limit, rv)
            api_version, kind = RESOURCES[resource]
            body = {"apiVersion": api_version, "kind": kind + "List", "metadata": meta,
                    "items": items}
        self.send_json(200, body)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, resource, ns, query):
        since = int(query.get("resourceVersion", "0") or 0)
        timeout = float(query.get("timeoutSeconds", "300"))
        deadline = time.monotonic() + timeout
        with STATE.cond:
            STATE.record(method="GET", resource=resource, watch=True, namespace=ns,
                         rv=query.get("resourceVersion", ""),
                         bookmarks=query.get("allowWatchBookmarks", ""))
            drop_gen = STATE.drops[resource]
            if since < STATE.floor[resource] and STATE.gone_as == "http":
                self.send_json(410, status_body(410, "Expired", "too old resource version: "
                                                "%d (%d)" % (since, STATE.floor[resource])))
                return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pos = since
        with STATE.cond:
            bm_seq = STATE.seq  # bookmarks are live only, never replayed
        try:
            while True:
                with STATE.cond:
                    done = False
                    nbm = 0
                    while True:
                        if STATE.drops[resource] != drop_gen:
                            # Cut mid-chunk: announce more bytes than we
                            # send, so the client sees a broken stream.
                            self.wfile.write(b"100\r\n{\"type\":\"MODI")
                            self.wfile.flush()
                            self.connection.shutdown(socket.SHUT_RDWR)
                            self.close_connection = True
                            return
                        if pos < STATE.floor[resource]:
                            err = {"type": "ERROR", "object": status_body(
                                410, "Expired", "too old resource version: %d (%d)" %
                                (pos, STATE.floor[resource]))}
                            events = [json.dumps(err).encode()]
                            done = True
                            break
                        events = []
                        for seq, rv, res, typ, obj in STATE.log:
                            if res != resource:
                                continue
                            if typ == "BOOKMARK":
                                if seq <= bm_seq:
                                    continue
                                bm_seq = seq
                                nbm += 1
                            elif rv <= pos:
                                continue
                            elif ns is not None and obj["metadata"].get("namespace") != ns:
                                continue
                            events.append(json.dumps({"type": typ, "object": obj}).encode())
                            pos = max(pos, rv)
                        if events:
                            break
                        left = deadline - time.monotonic()
                        if left <= 0:
                            done = True
                            break
                        STATE.cond.wait(min(left, 0.5))
                for e in events:
                    self.chunk(e + b"\n")
                if nbm:
                    with STATE.cond:
                        STATE.bookmarks_sent[resource] += nbm
                if done:
                    break
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients that go away mid-request (a stopped ferry_k8s, a TLS
        # handshake cut short) are normal here; anything else is a bug.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main():
    global TOKEN
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca")
    ap.add_argument("--token", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--scenario")
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    TOKEN = args.token
    if args.scenario:
        with open(args.scenario) as f:
            scenario = json.load(f)
        for resource, objs in scenario.get("objects", {}).items():
            if resource == "pods":
                STATE.pods = objs
                continue
            for obj in objs:
                STATE.put(resource, obj)
        for op in scenario.get("ops", []):
            STATE.run_op(op)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    if ":" in args.host:
        Server.address_family = socket.AF_INET6
    server = Server((args.host, 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    port = server.socket.getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
