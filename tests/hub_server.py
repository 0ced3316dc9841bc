"""A loopback Hugging Face Hub for tests: the part of the Hub's HTTP protocol that the real
`huggingface_hub` and `datasets` clients use to create a dataset repo, commit to it (regular and
LFS files, no Xet), and read it back (info, tree, paths-info, resolve), with revisions.

Run it with :func:`serve` (binds 127.0.0.1 on a free port) and point the clients at it through
`HF_ENDPOINT` and `HF_HUB_DISABLE_XET=1`; the `hub` fixture in test_hub.py does that. Storage lives
under a folder the caller gives (a pytest `tmp_path`). Nothing in hf_coreset knows about it.

Auth: requests may carry `Authorization: Bearer <token>`; a token that is not one of `tokens`
gets 401 "Invalid credentials", as the Hub answers. Writes need a valid token; a private repo is
invisible to everyone but its owner (RepoNotFound). `state.fail` injects faults:
`state.fail["commit"] = "close"` drops the connection of the next commit request without answering,
an int answers that status; `go_down()` simulates an outage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO = r"(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+?)"
API_ROUTES = [
    ("POST", r"/api/repos/create", "create_repo"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("GET", r"/api/whoami-v2", "whoami"),
    ("POST", rf"/api/{REPO}/preupload/(?P<rev>.+)", "preupload"),
    ("POST", rf"/api/{REPO}/commit/(?P<rev>.+)", "commit"),
    ("POST", rf"/api/{REPO}/branch/(?P<rev>.+)", "create_branch"),
    ("POST", rf"/api/{REPO}/paths-info/(?P<rev>[^/]+)", "paths_info"),
    ("GET", rf"/api/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
    ("GET", rf"/api/{REPO}/revision/(?P<rev>.+)", "repo_info"),
    ("GET", rf"/api/{REPO}/refs", "refs"),
    ("GET", rf"/api/{REPO}", "repo_info"),
    ("POST", rf"/(?:{REPO}|(?P<mrepo>[^/]+/[^/]+?))\.git/info/lfs/objects/batch", "lfs_batch"),  # models: no prefix
    ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", "lfs_put"),
    ("GET", rf"/(?:{REPO}|(?P<mrepo>[^/]+/[^/]+))/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    ("HEAD", rf"/(?:{REPO}|(?P<mrepo>[^/]+/[^/]+))/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
]
COMPILED = [(m, re.compile(p + r"/?$"), name) for m, p, name in API_ROUTES]
INITIAL_GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob, as the Hub reports it for regular files."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclass
class Entry:
    size: int
    sha256: str  # the file bytes live in blobs/<sha256>
    lfs: bool

    def pointer(self) -> bytes:
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n").encode()


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    commits: dict[str, dict] = field(default_factory=dict)  # sha -> {"tree": {path: Entry}, "parent", "title"}


class HubState:
    """Repos, commits and blobs of the loopback Hub; thread-safe through one lock."""

    def __init__(self, root: Path, tokens: dict[str, str]):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.tokens = dict(tokens)  # token -> user name
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()  # _send records requests under it, also inside locked handlers
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status), for tests
        self.fail: dict[str, object] = {}
        self.errors: list[str] = []  # tracebacks of server bugs
        self.down = False  # set by LoopbackHub.go_down: every request's connection is dropped
        self._counter = 0

    def store(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / "blobs" / sha
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha

    def read(self, sha: str) -> bytes:
        return (self.root / "blobs" / sha).read_bytes()

    def has_blob(self, sha: str) -> bool:
        return (self.root / "blobs" / sha).exists()

    def new_commit(self, repo: Repo, parent: str | None, tree: dict[str, Entry], title: str) -> str:
        self._counter += 1
        payload = json.dumps([parent, title, self._counter, sorted((p, e.sha256) for p, e in tree.items())])
        sha = hashlib.sha1(payload.encode()).hexdigest()
        repo.commits[sha] = {"tree": tree, "parent": parent, "title": title, "date": time.time()}
        return sha

    def commit_count(self, repo_id: str, repo_type: str = "dataset") -> int:
        return len(self.repos[(repo_type, repo_id)].commits)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "LoopbackHub"

    def log_message(self, format, *args):  # keep pytest output clean; requests are in state.requests
        pass

    # ----------------------------------------------------------------- plumbing
    def _dispatch(self, method: str):
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        path = url.path
        for m, regex, name in COMPILED:
            if m != method:
                continue
            match = regex.match(path)
            if match:
                params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                if "mrepo" in params:  # model repos have no type prefix in resolve URLs
                    params["repo"], params["type"] = params.pop("mrepo"), "model"
                fault = "close" if self.server.state.down else self.server.state.fail.pop(name, None)
                if fault == "close":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    self._record(method, path, 0)
                    return
                if isinstance(fault, int):
                    return self._error(fault, "Injected failure", method=method)
                try:
                    return getattr(self, "do_" + name)(**params)
                except HubError as err:
                    return self._error(err.status, err.message, code=err.code, method=method)
                except Exception as err:  # a bug in this server: answer 500 rather than hang the client
                    self.server.state.errors.append(traceback.format_exc())
                    return self._error(500, f"loopback hub error: {type(err).__name__}: {err}", method=method)
        self._error(404, f"No route for {method} {path}", method=method)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def _record(self, method, path, status):
        with self.server.state.lock:
            self.server.state.requests.append((method, urlsplit(path).path, status))

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json", headers=None,
              method: str | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if (method or self.command) != "HEAD":
            self.wfile.write(body)
        self._record(self.command, self.path, status)

    def _json(self, obj, status: int = 200, headers=None):
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, status: int, message: str, code: str | None = None, method: str | None = None):
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers=headers, method=method)

    # --------------------------------------------------------------------- auth
    def _user(self, required: bool = False) -> str | None:
        auth = self.headers.get("Authorization")
        if auth is None:
            if required:
                raise HubError(401, "You must be authenticated to access this resource.")
            return None
        token = auth.removeprefix("Bearer ").strip()
        user = self.server.state.tokens.get(token)
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _repo(self, type: str, repo: str, write: bool = False) -> Repo:
        user = self._user(required=write)
        found = self.server.state.repos.get((type, repo))
        owner = repo.split("/")[0]
        if found is None or (found.private and user != owner):  # a private repo is invisible to others
            raise HubError(401 if user is None else 404, "Repository not found", "RepoNotFound")
        if write and owner != user:
            raise HubError(403, f"You don't have the rights to write to {repo}")
        return found

    def _commit(self, repo: Repo, rev: str) -> tuple[str, dict]:
        sha = repo.branches.get(rev, rev if rev in repo.commits else None)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return sha, repo.commits[sha]

    # ---------------------------------------------------------------- endpoints
    def do_whoami(self):
        user = self._user(required=True)
        self._json({"type": "user", "name": user, "orgs": [], "auth": {"type": "access_token",
                                                                       "accessToken": {"role": "write"}}})

    def do_create_repo(self):
        user = self._user(required=True)
        payload = json.loads(self.body or b"{}")
        repo_id = f"{payload.get('organization') or user}/{payload['name']}"
        repo_type = payload.get("type") or "model"
        if repo_id.split("/")[0] != user:
            raise HubError(403, f"You don't have the rights to create a repo under {repo_id.split('/')[0]}")
        state = self.server.state
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.server.endpoint}/{prefix}{repo_id}"
        with state.lock:
            if (repo_type, repo_id) in state.repos:  # the Hub names the existing repo's url in its 409
                msg = "You already created this repo"
                return self._send(409, json.dumps({"error": msg, "url": url}).encode(), headers={"X-Error-Message": msg})
            repo = Repo(repo_id, repo_type, private=payload.get("visibility", "public") != "public"
                        or bool(payload.get("private")))
            tree = {".gitattributes": Entry(len(INITIAL_GITATTRIBUTES), state.store(INITIAL_GITATTRIBUTES), False)}
            repo.branches["main"] = state.new_commit(repo, None, tree, "initial commit")
            state.repos[(repo_type, repo_id)] = repo
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def do_validate_yaml(self):
        self._json({"errors": [], "warnings": []})

    def do_create_branch(self, type, repo, rev):
        r = self._repo(type, repo, write=True)
        payload = json.loads(self.body or b"{}")
        with self.server.state.lock:
            if rev in r.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{rev}")
            start, _ = self._commit(r, payload.get("startingPoint") or "main")
            r.branches[rev] = start
        self._json({})

    def do_refs(self, type, repo):
        r = self._repo(type, repo)
        self._json({"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in r.branches.items()],
                    "converts": [], "tags": []})

    def do_preupload(self, type, repo, rev):
        r = self._repo(type, repo, write=True)
        files = json.loads(self.body)["files"]
        tree = self._commit(r, rev)[1]["tree"] if rev in r.branches or rev in r.commits else {}
        out = []
        for f in files:
            # Parquet and other binary files go through LFS, like on the Hub (datasets relies on it).
            lfs = f["path"].endswith((".parquet", ".arrow", ".bin", ".safetensors")) or f["size"] > 10_000_000
            existing = tree.get(f["path"])
            oid = None
            if existing is not None:
                oid = existing.sha256 if existing.lfs else git_blob_oid(self.server.state.read(existing.sha256))
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self._json({"files": out, "commitOid": r.branches.get(rev, rev)})

    def do_lfs_batch(self, type, repo):
        self._repo(type, repo, write=True)
        payload = json.loads(self.body)
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not self.server.state.has_blob(obj["oid"]):
                entry["actions"] = {"upload": {"href": f"{self.server.endpoint}/lfs-upload/{obj['oid']}"}}
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def do_lfs_put(self, oid):
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, "Uploaded content does not match its oid")
        self.server.state.store(self.body)
        self._send(200, b"")

    def do_commit(self, type, repo, rev):
        r = self._repo(type, repo, write=True)
        state = self.server.state
        lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        with state.lock:
            parent, commit = self._commit(r, rev)
            if rev not in r.branches:
                raise HubError(400, f"Cannot commit to {rev}: not a branch", "RevisionNotFound")
            if header.get("parentCommit") and not parent.startswith(header["parentCommit"]):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            tree = dict(commit["tree"])
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    tree[value["path"]] = Entry(len(data), state.store(data), False)
                elif key == "lfsFile":
                    if not state.has_blob(value["oid"]):
                        raise HubError(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                    tree[value["path"]] = Entry(value["size"], value["oid"], True)
                elif key == "deletedFile":
                    if tree.pop(value["path"], None) is None:
                        raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    tree = {p: e for p, e in tree.items() if not p.startswith(prefix)}
                elif key != "header":
                    raise HubError(400, f"Unsupported commit operation {key}")
            sha = state.new_commit(r, parent, tree, header.get("summary", ""))
            r.branches[rev] = sha
        prefix = "" if type == "model" else f"{type}s/"
        self._json({"commitUrl": f"{self.server.endpoint}/{prefix}{repo}/commit/{sha}", "commitOid": sha,
                    "success": True, "pullRequestUrl": None})

    def _file_json(self, path: str, e: Entry) -> dict:
        data = {"type": "file", "path": path, "size": e.size,
                "oid": git_blob_oid(e.pointer() if e.lfs else self.server.state.read(e.sha256))}
        if e.lfs:
            data["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": len(e.pointer())}
        return data

    def _listing(self, tree: dict[str, Entry], base: str, recursive: bool) -> list[dict]:
        base = base.strip("/")
        prefix = base + "/" if base else ""
        out, dirs = [], set()
        for path in sorted(tree):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):].split("/")
            for depth in range(1, len(rest)):
                if recursive or depth == 1:
                    dirs.add(prefix + "/".join(rest[:depth]))
            if recursive or len(rest) == 1:
                out.append(self._file_json(path, tree[path]))
        out += [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in sorted(dirs)]
        return out

    def do_tree(self, type, repo, rev, path=""):
        r = self._repo(type, repo)
        tree = self._commit(r, rev)[1]["tree"]
        path = path.strip("/")
        if path and path not in {p.rsplit("/", 1)[0] for p in tree if "/" in p} and not any(
                p.startswith(path + "/") for p in tree):
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        self._json(self._listing(tree, path, recursive))

    def do_paths_info(self, type, repo, rev):
        r = self._repo(type, repo)
        tree = self._commit(r, rev)[1]["tree"]
        form = parse_qs(self.body.decode()) if self.body else {}
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = json.loads(self.body)
        paths = form.get("paths", [])
        out = []
        for p in paths:
            p = p.strip("/")
            if p in tree:
                out.append(self._file_json(p, tree[p]))
            elif any(q.startswith(p + "/") for q in tree):
                out.append({"type": "directory", "path": p, "oid": hashlib.sha1(p.encode()).hexdigest()})
        self._json(out)

    def do_repo_info(self, type, repo, rev="main"):
        r = self._repo(type, repo)
        sha, commit = self._commit(r, rev)
        siblings = [{"rfilename": p, "size": e.size, "blobId": self._file_json(p, e)["oid"],
                     **({"lfs": {"sha256": e.sha256, "size": e.size, "pointerSize": len(e.pointer())}} if e.lfs else {})}
                    for p, e in sorted(commit["tree"].items())]
        last = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit["date"]))
        self._json({"_id": hashlib.sha1(repo.encode()).hexdigest()[:24], "id": repo, "author": repo.split("/")[0],
                    "sha": sha, "private": r.private, "disabled": False, "gated": False, "downloads": 0, "likes": 0,
                    "tags": [], "siblings": siblings, "lastModified": last, "createdAt": last, "cardData": {}})

    def do_resolve(self, type, repo, rev, path):
        r = self._repo(type, repo)
        sha, commit = self._commit(r, rev)
        e = commit["tree"].get(path)
        if e is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        data = self.server.state.read(e.sha256)
        etag = e.sha256 if e.lfs else git_blob_oid(data)
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if e.lfs:
            headers.update({"X-Linked-Etag": f'"{e.sha256}"', "X-Linked-Size": str(e.size)})
        status = 200
        rng = self.headers.get("Range")
        if rng:  # HfFileSystem reads files in ranges
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m:
                start = int(m.group(1)) if m.group(1) else max(len(data) - int(m.group(2)), 0)
                end = int(m.group(2)) if m.group(1) and m.group(2) else len(data) - 1
                end = min(end, len(data) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                data, status = data[start:end + 1], 206
        self._send(status, data, content_type="application/octet-stream", headers=headers)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class LoopbackHub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, tokens: dict[str, str]):
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = HubState(root, tokens)
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"

    def go_down(self) -> None:
        """Simulate an outage: stop accepting connections and drop requests on open keep-alive ones."""
        self.state.down = True
        self.shutdown()
        self.server_close()


def serve(root: Path, tokens: dict[str, str]) -> tuple[LoopbackHub, threading.Thread]:
    """Start a loopback Hub in a daemon thread; stop it with ``server.shutdown(); server.server_close()``."""
    server = LoopbackHub(root, tokens)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


class SilentServer:
    """A server on 127.0.0.1 that accepts TCP connections and never answers: the hang a client
    without timeouts waits on forever. Connections are held open until :meth:`close`."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.sock.settimeout(0.05)  # so that the accept loop sees close() promptly
        self.accepted: list[socket.socket] = []
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.closed = True
        self.thread.join(timeout=5)
        self.sock.close()
        for conn in self.accepted:
            conn.close()
