"""The rank entry points of the benchmark grid's use cases, named as ``"module:function"`` by
:mod:`distinv.bench.registry`: ``denoise`` (:mod:`~distinv.bench.use_cases.denoise`), ``allreduce``
(:mod:`~distinv.bench.use_cases.collectives`) and ``images``, ``ct``, ``radio``
(:mod:`~distinv.bench.use_cases.reconstruction`)."""
