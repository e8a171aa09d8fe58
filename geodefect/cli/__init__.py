"""Command-line interface: one click module per verb, kept thin."""
