"""Tests of the `narrate` CLI and its API client."""
