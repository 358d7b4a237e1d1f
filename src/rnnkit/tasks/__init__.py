"""The built-in tasks, one package each (``lm``, ``sorting``, ``seq2seq``, ``forecasting``,
``captioning``): its config and presets, model, data and batches, metrics, plots and the task class
the CLI and the trainer use.

What they share: :mod:`.base` (the task registry, presets, reading a run directory back),
:mod:`.config` (the config fields every task has), :mod:`.cells` (a registered cell's layer),
:mod:`.batches` (the batches of one split and epoch), :mod:`.beam` and :mod:`.text_metrics`.
"""
