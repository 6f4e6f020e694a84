"""Tests of the local stack (narrate-stack) and the demo (narrate-demo)."""
