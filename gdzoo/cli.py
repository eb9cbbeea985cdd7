"""The ``gdzoo`` command line. Each subcommand lives beside the code it drives."""
from __future__ import annotations

import click

from . import __version__
from .bench_cli import bench_command
from .reproduce_cli import reproduce_command
from .upstream import convert_upstream_command
from .zoo.commands import info_command, list_command, push_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gdzoo")
def main() -> None:
    """gdzoo: CNNs pruned with Gate Decorator, their recipes and Hub publishing."""


for command in (list_command, info_command, push_command, reproduce_command, convert_upstream_command, bench_command):
    main.add_command(command)
