"""The ``neurohal`` command line. Data goes to stdout, progress and messages to stderr."""

from __future__ import annotations

import sys

import click

from neurohal.cli import compare, convert, deploy, devices, inspect, optimize
from neurohal.errors import NeurohalError


class _Group(click.Group):
    """Turns a NeurohalError into a one-line message and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except NeurohalError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


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
    optimize.command,
):
    main.add_command(_command)
