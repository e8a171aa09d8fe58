"""Training: the one task-agnostic loop (``loop``), its state and resume (``state``, ``resume``),
reports (``report``) and the learning-rate range test (``lr_find``)."""
