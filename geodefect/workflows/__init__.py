"""One task-agnostic workflow per verb: ``chip``, ``train``, ``infer``, ``evaluate``, ``explain``,
``review``, ``demo``.

Each resolves its config, looks the task up in :mod:`geodefect.tasks` (from the inputs, the
chip folder's ``meta.json`` or the model package's recipe), calls the task's hooks, writes its
outputs atomically and returns one :class:`~geodefect.summary.Summary`. The CLI calls only these.
"""
