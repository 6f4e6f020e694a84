"""Helpers shared by the test packages: real servers started on free ports."""
