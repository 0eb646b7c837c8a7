"""Publish a model folder to the Hugging Face Hub as one commit (or one pull request).

The token comes from HF_TOKEN or the standard login (`hf auth login`) and is checked with
`whoami` before anything is sent. Every file goes into a single `create_commit`: huggingface_hub
uploads the large files first and only then posts the commit, so a failed upload leaves the repo
as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import PublishError

__all__ = [
    "BUILD_STATE_NAME",
    "CommitPlan",
    "PublishError",
    "check_token",
    "plan_commit",
    "publish",
]

BUILD_STATE_NAME = "build_state.json"
TOKEN_HELP = (
    "Create a token with write access at https://huggingface.co/settings/tokens, then set "
    "HF_TOKEN=hf_... or run `hf auth login`."
)


@dataclass
class PlannedFile:
    """A file of the folder and where it goes in the repo."""

    path_in_repo: str
    local_path: Path
    size: int


@dataclass
class CommitPlan:
    """Everything the commit will do, shown by --dry-run and carried out by `publish`."""

    folder: Path
    repo_id: str
    files: list[PlannedFile]
    private: bool
    create_pr: bool
    message: str
    description: str = ""

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def describe(self) -> str:
        """The plan as text: repo, visibility, commit or PR, and every file with its size."""
        from huggingface_hub import constants

        target = "a pull request against main" if self.create_pr else "one commit on main"
        lines = [
            f"Commit plan for {constants.ENDPOINT}/{self.repo_id}",
            f"  repo:       {self.repo_id} ({'private' if self.private else 'public'}; created if "
            "missing)",
            f"  as:         {target}",
            f"  message:    {self.message}",
            f"  token:      {_token_source()}",
            f"  files:      {len(self.files)}, {_size(self.total_size)} in total",
        ]
        width = max(len(f.path_in_repo) for f in self.files)
        lines += [f"    {f.path_in_repo:<{width}}  {_size(f.size):>9}" for f in self.files]
        return "\n".join(lines)


def _size(n: int) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _token_source() -> str:
    """Where the token would come from; a local check only (no network)."""
    from huggingface_hub import constants

    if os.environ.get("HF_TOKEN"):
        return "HF_TOKEN (checked with whoami before uploading)"
    if Path(constants.HF_TOKEN_PATH).is_file():
        return "the stored login from `hf auth login` (checked with whoami before uploading)"
    return "NONE FOUND: publishing would fail. " + TOKEN_HELP


def plan_commit(
    folder: Path,
    repo_id: str,
    *,
    private: bool = False,
    create_pr: bool = False,
    message: str | None = None,
    description: str = "",
) -> CommitPlan:
    """List what would be uploaded from `folder`: every file but hidden ones and the build state.

    Raises:
        PublishError: `repo_id` is not user/name, or `folder` is not a complete model folder.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from ipex_embeddings import ModelFolderError
    from ipex_embeddings.folder import check_model_folder

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PublishError(f"{repo_id!r} is not a valid repo id ({err}). Use user/name.") from err
    if repo_id.count("/") != 1:
        raise PublishError(
            f"{repo_id!r} has no namespace; use your user or organisation name: user/{repo_id}."
        )
    try:
        config = check_model_folder(folder)
    except ModelFolderError as err:
        raise PublishError(f"Not publishing {folder}: {err}") from err
    files = [
        PlannedFile(p.relative_to(folder).as_posix(), p, p.stat().st_size)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and p.name != BUILD_STATE_NAME
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    source = config.source_model or folder.name
    return CommitPlan(
        folder=folder,
        repo_id=repo_id,
        files=files,
        private=private,
        create_pr=create_pr,
        message=message or f"Upload {source} as an OpenVINO {config.precision} model (ipex-embed)",
        description=description,
    )


def check_token(repo_id: str, token: str | None = None) -> tuple[str, str]:
    """Find the token and check it with whoami: return (token, user name), or raise PublishError.

    Refuses a read-only token and a namespace the user cannot write to, before any upload.
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    token = token or get_token()
    if not token:
        raise PublishError(f"No Hugging Face token found, so nothing was uploaded. {TOKEN_HELP}")
    api = HfApi(token=token)
    try:
        identity = api.whoami()
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        raise PublishError(
            f"The Hub at {api.endpoint} rejected the token (HTTP {status}: {err}). Nothing was "
            f"uploaded. {TOKEN_HELP}"
        ) from err
    except Exception as err:  # the HTTP client's own errors: connection refused, timeout, DNS
        raise PublishError(
            f"Could not reach the Hub at {api.endpoint} ({err}). Nothing was uploaded; check your "
            "network, and that HF_HUB_OFFLINE is unset (and HF_ENDPOINT, if you set it)."
        ) from err
    user = str(identity.get("name", ""))
    role = ((identity.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise PublishError(
            f"The token of {user} is read-only, so it cannot create repos or commit. Nothing was "
            f"uploaded. {TOKEN_HELP}"
        )
    namespaces = [user, *(org.get("name", "") for org in identity.get("orgs") or [])]
    namespace = repo_id.split("/")[0]
    if namespace not in namespaces:
        raise PublishError(
            f"You are logged in as {user}, who cannot push to {namespace}/ (yours: "
            f"{', '.join(n for n in namespaces if n)}). Pick a repo id in one of these."
        )
    return token, user


def publish(plan: CommitPlan, *, token: str | None = None) -> str:
    """Check the token, create the repo if missing, commit every file at once; return the URL.

    Raises:
        PublishError: no usable token, or the repo or the commit could not be made (the repo is
            then unchanged).
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    token, _ = check_token(plan.repo_id, token)
    api = HfApi(token=token)
    try:
        api.create_repo(plan.repo_id, private=plan.private, exist_ok=True, repo_type="model")
    except Exception as err:  # HTTP status errors and the client's network errors alike
        raise PublishError(
            f"Could not create {plan.repo_id} on {api.endpoint} ({err}). Nothing was uploaded."
        ) from err
    operations = [CommitOperationAdd(f.path_in_repo, str(f.local_path)) for f in plan.files]
    try:
        info = api.create_commit(
            plan.repo_id,
            operations,
            commit_message=plan.message,
            commit_description=plan.description,
            create_pr=plan.create_pr,
            repo_type="model",
        )
    except Exception as err:  # any failure before or during the commit request
        cause = f"{err}" + (f" (caused by: {err.__cause__})" if err.__cause__ else "")
        raise PublishError(
            f"Uploading {plan.folder} to {plan.repo_id} failed: {cause}. No commit was made: the "
            "commit is a single request sent only after every file has been uploaded, so the repo "
            "is unchanged. Fix the cause and run the same command again."
        ) from err
    return str(info.pr_url or info.commit_url)
