"""Test helpers shipped with botmem, for its own tests and for users'."""
