"""MkDocs hook (mkdocs.yml ``hooks:``): write every command's ``--help`` into the command-line
reference, where the page has the marker ``<!-- cli-help -->``, so that the reference is the
command line's own text and cannot drift from it."""

from __future__ import annotations

from typing import Any

import click

MARKER = "<!-- cli-help -->"


def _commands(group: click.Group, ctx: click.Context) -> list[tuple[click.Command, click.Context]]:
    found = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(cmd, info_name=name, parent=ctx, terminal_width=100, max_content_width=100)
        found.append((cmd, sub))
        if isinstance(cmd, click.Group):
            found += _commands(cmd, sub)
    return found


def cli_reference() -> str:
    from featviz.cli import main

    root = click.Context(main, info_name="featviz", terminal_width=100, max_content_width=100)
    parts = []
    for cmd, ctx in _commands(main, root):
        parts += [f"### {ctx.command_path}", "", "```text", cmd.get_help(ctx), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())
