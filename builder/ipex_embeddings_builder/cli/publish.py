"""`ipex-embed publish`."""

from __future__ import annotations

from pathlib import Path

import click

from .options import library_errors

__all__ = ["publish_command"]


@click.command("publish")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="Create the repo as private (if it does not exist).")
@click.option("--create-pr", is_flag=True, help="Open a pull request instead of pushing to main.")
@click.option("--dry-run", is_flag=True, help="Print the commit plan; upload nothing.")
@click.option("--message", help="Commit message (default: names the source model).")
def publish_command(
    folder: Path, repo_id: str, private: bool, create_pr: bool, dry_run: bool, message: str | None
) -> None:
    """Upload a model FOLDER (made by `ipex-embed build`) to the Hub repo REPO_ID in one commit."""
    from ..publish import plan_commit, publish

    with library_errors():
        plan = plan_commit(folder, repo_id, private=private, create_pr=create_pr, message=message)
        click.echo(plan.describe())
        if dry_run:
            click.echo("Dry run: nothing was uploaded.")
            return
        url = publish(plan)
    click.echo(f"Published {len(plan.files)} files to {url}")


if __name__ == "__main__":
    publish_command()
