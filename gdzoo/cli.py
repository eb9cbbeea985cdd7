"""The ``gdzoo`` command line. Each subcommand lives beside the code it drives."""
from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gdzoo")
def main() -> None:
    """gdzoo: CNNs pruned with Gate Decorator, their recipes and Hub publishing."""


# Subcommands are registered below, one line each, by the modules that implement them.
from .reproduce_cli import reproduce_command  # noqa: E402

main.add_command(reproduce_command)
from .zoo.commands import info_command, list_command, push_command  # noqa: E402

main.add_command(list_command)
main.add_command(info_command)
main.add_command(push_command)

from .upstream import convert_upstream_command  # noqa: E402

main.add_command(convert_upstream_command)

from .bench_cli import bench_command  # noqa: E402

main.add_command(bench_command)
