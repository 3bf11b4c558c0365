"""The benchmark pipeline: a YAML grid (:mod:`~distinv.bench.config`) of use cases (:mod:`~distinv.bench.registry`)
run point by point in fresh ranks (:mod:`~distinv.bench.runner`, :mod:`~distinv.bench.measure`), stored with
their provenance (:mod:`~distinv.bench.store`, :mod:`~distinv.bench.provenance`), summarised
(:mod:`~distinv.bench.summary`) and turned into chapter 10's numbers (:mod:`~distinv.bench.findings`).

Sub-packages: :mod:`distinv.bench.use_cases` (the rank entry points the registry names) and
:mod:`distinv.bench.studies` (stand-alone benchmark commands, each printing a JSON document). The figures
and tables of the results live in :mod:`distinv.plots`.
"""
