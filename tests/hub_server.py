"""A small, real HTTP server speaking the Hugging Face Hub endpoints that huggingface_hub 2.4 uses.

It serves what `ipex-embed` and `Encoder.load` call, over real sockets, so the tests exercise the
real client: whoami, create_repo, validate-yaml, preupload, the git-LFS batch API with a plain PUT
upload and a verify call, commit (one NDJSON request, optionally as a pull request), repo info,
the recursive tree listing, and file download (resolve, HEAD and GET).

Like the Hub, preupload answers "lfs" for binary or large files. The client then uploads them
with the Xet protocol when `hf_xet` is installed; this server does not implement Xet's CAS, so
clients pointed at it must run with HF_HUB_DISABLE_XET=1, which makes huggingface_hub use the
LFS batch + PUT path (the path every Hub repo still accepts).

Repos, commits and blobs live in memory. Faults can be injected (`fail_upload_status`,
`fail_commit_status`) to test that a failed upload leaves no commit behind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

__all__ = ["Commit", "HubRepo", "HubServer", "client_env"]

# Suffixes the Hub's default .gitattributes stores in LFS; big or binary files go there too.
LFS_SUFFIXES = (
    ".bin", ".safetensors", ".onnx", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".npy", ".npz",
    ".h5", ".msgpack", ".model", ".zip", ".gz", ".tar", ".zst", ".parquet", ".arrow",
)
LFS_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = b"*.bin filter=lfs diff=lfs merge=lfs -text\n"


def client_env(endpoint: str, home: Path, token: str | None = None) -> dict[str, str]:
    """Environment for a huggingface_hub client process that talks to this server only.

    No token or login is inherited: HF_HOME is a fresh folder and HF_TOKEN is `token` or unset.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env |= {"HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
            "TOKENIZERS_PARALLELISM": "false"}
    if token:
        env["HF_TOKEN"] = token
    return env


def git_blob_id(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as a regular file's oid)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str, size: int, sample: bytes) -> bool:
    """The Hub's rule: LFS for tracked suffixes, files over 10 MB, and binary content."""
    return path.endswith(LFS_SUFFIXES) or size > LFS_THRESHOLD or b"\0" in sample


@dataclass
class Commit:
    """One commit: the whole tree at that point (path -> bytes) and how each file was sent."""

    oid: str
    message: str
    files: dict[str, bytes]
    lfs_paths: set[str] = field(default_factory=set)
    pr_number: int | None = None


@dataclass
class HubRepo:
    """A model repo: its owner's visibility choice, the main branch history and pull requests."""

    repo_id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)
    pull_requests: dict[int, Commit] = field(default_factory=dict)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def resolve(self, revision: str) -> Commit | None:
        if revision in ("main", "HEAD"):
            return self.head
        if revision.startswith("refs/pr/") and revision[8:].isdigit():
            return self.pull_requests.get(int(revision[8:]))
        every = [*self.commits, *self.pull_requests.values()]
        return next((c for c in every if c.oid == revision), None)


class HubError(Exception):
    """An HTTP error answered the way the Hub does (status, X-Error-Code, JSON "error")."""

    def __init__(
        self, status: int, message: str, code: str | None = None, **extra: object
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class HubServer:
    """The server and its state. Use as a context manager; `url` is the endpoint to set."""

    def __init__(self, tokens: dict[str, tuple[str, str]] | None = None) -> None:
        """`tokens` maps a token to (user name, role "read" or "write")."""
        self.tokens = tokens or {}
        self.repos: dict[str, HubRepo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_upload_status: int | None = None
        self.fail_commit_status: int | None = None
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def add_repo(self, repo_id: str, files: dict[str, bytes], private: bool = False) -> HubRepo:
        """Seed a repo with one commit holding `files` (for loading tests)."""
        repo = HubRepo(repo_id, private)
        self._append_commit(repo, "seed", {".gitattributes": GITATTRIBUTES, **files}, set())
        self.repos[repo_id] = repo
        return repo

    def uploads(self, repo_id: str) -> list[Commit]:
        """Commits made after the repo was created (the creation commit excluded)."""
        repo = self.repos.get(repo_id)
        return [] if repo is None else repo.commits[1:] + list(repo.pull_requests.values())

    # --- the state changes, each under the lock ---------------------------------------------

    def _append_commit(
        self, repo: HubRepo, message: str, files: dict[str, bytes], lfs_paths: set[str],
        pr: bool = False,
    ) -> Commit:
        tree = sorted((p, hashlib.sha256(b).hexdigest()) for p, b in files.items())
        position = (len(repo.commits), len(repo.pull_requests))
        digest = hashlib.sha1(repr((repo.repo_id, message, position, tree)).encode()).hexdigest()
        if pr:
            number = len(repo.pull_requests) + 1
            commit = Commit(digest, message, files, lfs_paths, pr_number=number)
            repo.pull_requests[number] = commit
        else:
            commit = Commit(digest, message, files, lfs_paths)
            repo.commits.append(commit)
        return commit


def _handler_for(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_HubHandler):
        server_state = hub

    return Handler


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    # --- plumbing ------------------------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers)

    def _user(self, role: str | None = None) -> str | None:
        """The token's user: 401 for an unknown token, 403 if `role` is "write" and it is not."""
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            if role:
                raise HubError(401, "You must be authenticated to do this (no token sent).")
            return None
        found = self.server_state.tokens.get(auth[7:])
        if found is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        user, token_role = found
        if role == "write" and token_role != "write":
            raise HubError(403, f"The token of {user} is read-only; it cannot write.")
        return user

    def _repo(self, repo_id: str, *, write: bool = False) -> HubRepo:
        hub = self.server_state
        user = self._user("write" if write else None)
        repo = hub.repos.get(repo_id)
        if repo is None or (repo.private and user != repo_id.split("/")[0]):
            raise HubError(404, f"Repository {repo_id} not found.", "RepoNotFound")
        if write and user != repo_id.split("/")[0]:
            raise HubError(403, f"{user} cannot write to {repo_id}.")
        return repo

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        self.server_state.requests.append((self.command, url.path))
        try:
            body = self._body() if self.command in ("POST", "PUT") else b""
            with self.server_state.lock:
                self._route(parts, body)
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json(err.status, {"error": err.message, **err.extra}, headers)

    do_GET = do_HEAD = do_POST = do_PUT = _dispatch  # noqa: N815 - http.server's naming

    def _route(self, parts: list[str], body: bytes) -> None:
        method = self.command
        if method == "GET" and parts == ["api", "agent-harnesses"]:  # the client's user-agent probe
            return self._json(200, {"standardEnvVars": [], "harnesses": {}})
        if method == "GET" and parts == ["api", "whoami-v2"]:
            return self._whoami()
        if method == "POST" and parts == ["api", "repos", "create"]:
            return self._create_repo(json.loads(body))
        if method == "POST" and parts == ["api", "validate-yaml"]:
            return self._validate_yaml(json.loads(body))
        if len(parts) >= 5 and parts[:2] == ["api", "models"]:
            repo_id, action, rest = f"{parts[2]}/{parts[3]}", parts[4], parts[5:]
            revision = unquote(rest[0]) if rest else "main"
            if method == "POST" and action == "preupload":
                return self._preupload(repo_id, json.loads(body))
            if method == "POST" and action == "commit":
                return self._commit(repo_id, revision, body)
            if method == "GET" and action == "revision":
                return self._repo_info(repo_id, revision)
            if method == "GET" and action == "tree":
                return self._tree(repo_id, revision, "/".join(unquote(p) for p in rest[1:]))
        if method == "GET" and len(parts) == 4 and parts[:2] == ["api", "models"]:
            return self._repo_info(f"{parts[2]}/{parts[3]}", "main")
        if method == "POST" and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(f"{parts[0]}/{parts[1].removesuffix('.git')}", json.loads(body))
        if method == "PUT" and len(parts) == 2 and parts[0] == "lfs-upload":
            return self._lfs_put(parts[1], body)
        if method == "POST" and parts == ["lfs-verify"]:
            return self._lfs_verify(json.loads(body))
        if method in ("GET", "HEAD") and len(parts) >= 5 and parts[2] == "resolve":
            path = "/".join(unquote(p) for p in parts[4:])
            return self._resolve(f"{parts[0]}/{parts[1]}", unquote(parts[3]), path)
        raise HubError(404, f"{method} {self.path} is not served by this test Hub.")

    # --- endpoints -----------------------------------------------------------------------------

    def _whoami(self) -> None:
        user = self._user("read")
        role = self.server_state.tokens[self.headers["Authorization"][7:]][1]
        self._json(200, {
            "type": "user", "name": user, "fullname": user, "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": role}},
        })

    def _create_repo(self, payload: dict[str, Any]) -> None:
        user = self._user("write")
        namespace = payload.get("organization") or user
        if namespace != user:
            raise HubError(403, f"{user} cannot create repos under {namespace}.")
        if payload.get("type", "model") != "model":
            raise HubError(400, "This test Hub only holds model repos.")
        repo_id = f"{namespace}/{payload['name']}"
        hub = self.server_state
        if repo_id in hub.repos:
            raise HubError(409, "You already created this model repo", "RepoExists",
                           url=f"{hub.url}/{repo_id}")
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        repo = HubRepo(repo_id, private)
        hub._append_commit(repo, "initial commit", {".gitattributes": GITATTRIBUTES}, set())
        hub.repos[repo_id] = repo
        self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _validate_yaml(self, payload: dict[str, Any]) -> None:
        self._user()
        content = payload.get("content", "")
        if not content.startswith("---\n") or "\n---" not in content[3:]:
            warning = {"message": "empty or missing yaml metadata"}
            return self._json(200, {"errors": [], "warnings": [warning]})
        try:
            metadata = yaml.safe_load(content[4 : content.index("\n---", 3)])
        except yaml.YAMLError as err:
            return self._json(400, {"errors": [{"message": f"invalid YAML: {err}"}]})
        if not isinstance(metadata, dict):
            return self._json(400, {"errors": [{"message": "metadata must be a mapping"}]})
        self._json(200, {"errors": [], "warnings": []})

    def _preupload(self, repo_id: str, payload: dict[str, Any]) -> None:
        repo = self._repo(repo_id, write=not self.query.get("create_pr"))
        files = []
        for item in payload["files"]:
            sample = base64.b64decode(item["sample"])
            lfs = is_lfs(item["path"], item["size"], sample)
            existing = repo.head.files.get(item["path"])
            oid = None
            if existing is not None:
                oid = hashlib.sha256(existing).hexdigest() if lfs else git_blob_id(existing)
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular",
                          "shouldIgnore": False, "oid": oid})
        self._json(200, {"files": files, "commitOid": repo.head.oid})

    def _lfs_batch(self, repo_id: str, payload: dict[str, Any]) -> None:
        self._repo(repo_id, write=True)
        hub = self.server_state
        objects = []
        for obj in payload["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in hub.lfs_objects:
                entry["actions"] = {
                    "upload": {"href": f"{hub.url}/lfs-upload/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{hub.url}/lfs-verify", "header": {}},
                }
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects})

    def _lfs_put(self, oid: str, body: bytes) -> None:
        hub = self.server_state
        if hub.fail_upload_status is not None:
            raise HubError(hub.fail_upload_status, "Storage backend failure (injected by a test).")
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match sha256 {oid}.")
        hub.lfs_objects[oid] = body
        self._send(200)

    def _lfs_verify(self, payload: dict[str, Any]) -> None:
        stored = self.server_state.lfs_objects.get(payload["oid"])
        if stored is None or len(stored) != payload["size"]:
            raise HubError(404, f"LFS object {payload['oid']} was not uploaded.")
        self._json(200, {"success": True})

    def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
        hub = self.server_state
        create_pr = self.query.get("create_pr") == "1"
        repo = self._repo(repo_id, write=not create_pr)
        if create_pr:
            self._user("read")
        if hub.fail_commit_status is not None:
            raise HubError(hub.fail_commit_status, "Commit failed (injected by the test).")
        base = repo.resolve(revision)
        if base is None:
            raise HubError(404, f"Revision {revision} not found.", "RevisionNotFound")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line.")
        files, lfs_paths = dict(base.files), set(base.lfs_paths)
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                lfs_paths.discard(value["path"])
            elif line["key"] == "lfsFile":
                blob = hub.lfs_objects.get(value["oid"])
                if blob is None:
                    raise HubError(422, f"LFS object {value['oid']} ({value['path']}) is missing.")
                files[value["path"]] = blob
                lfs_paths.add(value["path"])
            elif line["key"] == "deletedFile":
                files.pop(value["path"], None)
            elif line["key"] == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: b for p, b in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"Unknown commit operation {line['key']!r}.")
        commit = hub._append_commit(repo, lines[0]["value"]["summary"], files, lfs_paths, create_pr)
        pr_url = f"{hub.url}/{repo_id}/discussions/{commit.pr_number}" if create_pr else None
        self._json(200, {
            "commitUrl": f"{hub.url}/{repo_id}/commit/{commit.oid}", "commitOid": commit.oid,
            "pullRequestUrl": pr_url,
        })

    def _revision(self, repo_id: str, revision: str) -> tuple[HubRepo, Commit]:
        repo = self._repo(repo_id)
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Revision {revision} not found in {repo_id}.", "RevisionNotFound")
        return repo, commit

    def _repo_info(self, repo_id: str, revision: str) -> None:
        repo, commit = self._revision(repo_id, revision)
        self._json(200, {
            "id": repo_id, "modelId": repo_id, "sha": commit.oid, "private": repo.private,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)], "tags": [],
        })

    def _tree(self, repo_id: str, revision: str, prefix: str) -> None:
        _, commit = self._revision(repo_id, revision)
        recursive = self.query.get("recursive", "").lower() in ("true", "1")
        entries: dict[str, dict[str, Any]] = {}
        for path, data in sorted(commit.files.items()):
            if prefix and not path.startswith(prefix.rstrip("/") + "/"):
                continue
            relative = PurePosixPath(path).relative_to(prefix) if prefix else PurePosixPath(path)
            for depth in range(1, len(relative.parts)):
                folder = str(PurePosixPath(prefix, *relative.parts[:depth]))
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": "0" * 40})
                if not recursive:
                    break
            if recursive or len(relative.parts) == 1:
                entry: dict[str, Any] = {"type": "file", "path": path, "size": len(data),
                                         "oid": git_blob_id(data)}
                if path in commit.lfs_paths:
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                    "pointerSize": 134}
                entries[path] = entry
        self._json(200, list(entries.values()))

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        _, commit = self._revision(repo_id, revision)
        data = commit.files.get(path)
        if data is None:
            raise HubError(404, f"{path} not found in {repo_id}@{revision}.", "EntryNotFound")
        lfs = path in commit.lfs_paths
        etag = hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data)
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{etag}"'}
        if lfs:
            headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))}
        self._send(200, data, headers, "application/octet-stream")
