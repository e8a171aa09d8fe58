"""Sample plots of training runs (roads, inspection)."""
