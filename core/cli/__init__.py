"""The ``neurohal`` command line. Data goes to stdout, progress and messages to stderr."""

from __future__ import annotations

import sys

import click

from neurohal import plugins
from neurohal.cli import compare, convert, deploy, devices, inspect
from neurohal.errors import NeurohalError


class _Group(click.Group):
    """Turns a NeurohalError into a one-line message and exit status 1, not a traceback, and
    adds the commands plugins register (``neurohal_register_commands``) to the built-in ones.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except NeurohalError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *plugins.registry().commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or plugins.registry().commands.get(name)


@click.group(cls=_Group)
@click.version_option(package_name="neurohal")
def main() -> None:
    """Convert DNNs to spiking networks and run them on neuromorphic and edge devices."""


for _command in (
    devices.command,
    inspect.command,
    convert.command,
    compare.compare_command,
    compare.demo_command,
    deploy.compile_command,
    deploy.run_command,
    deploy.measure_command,
    deploy.export_command,
    deploy.formats_command,
):
    main.add_command(_command)
