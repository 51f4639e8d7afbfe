"""Fixtures shared by every test folder."""

pytest_plugins = ["tests.utils.postgres"]  # postgres_server, postgres_url
