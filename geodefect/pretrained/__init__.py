"""Pretrained model packages shipped as package data (see geodefect.models.pretrained and MODEL_CARD.md)."""
