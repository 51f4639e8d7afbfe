import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `geokd` CLI."""
