"""geodefect: maps of infrastructure and its defects from imagery."""
__version__ = "0.1.0"
