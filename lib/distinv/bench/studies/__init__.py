"""Stand-alone benchmark commands, each printing one JSON document (``--out FILE`` writes it too, see
:mod:`distinv.bench.output`): ``python -m distinv.bench.studies.prior`` (the tiled prior),
``.schedule`` (tile schedules), ``.comm_overhead`` (the accounted wrappers), ``.ct`` and ``.radio``
(the use cases of chapters 02 and 03) and ``.gpu_check`` (``make gpu-check``). :mod:`~distinv.bench.studies.scaling`
is no command: the strong-scaling model fitted to the grid's runs and the published figures."""
