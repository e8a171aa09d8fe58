"""Synthetic data for tests, examples and the demo (deterministic by seed).

scenes.py: georeferenced road scenes; cracks.py / rail.py: inspection images;
damage.py: road-damage patches and panoramas.
"""
