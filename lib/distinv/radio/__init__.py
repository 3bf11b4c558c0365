"""Radio interferometry: a telescope, observations, skies, Measurement Sets and the NUFFT measurement operator.

- :mod:`distinv.radio.array`: dish positions (MeerKAT's 64 shipped) and baselines (numpy only);
- :mod:`distinv.radio.observation`: earth-rotation tracks → (u, v, w), from 1e4 to 1e8 visibilities;
- :mod:`distinv.radio.sky`: seeded procedural skies (points, radio galaxies, diffuse emission);
- :mod:`distinv.radio.ms`: any Measurement Set read with python-casacore, one block of rows per rank;
- :mod:`distinv.radio.nufft`: the operator :math:`A` as a deepinv ``LinearPhysics`` (finufft, deepinv);
- :mod:`distinv.radio.dirty`: the dirty image of an MS on several ranks (``python -m distinv.radio.dirty``);
- :mod:`distinv.radio.speed`: the backends' benchmark (``python -m distinv.radio.speed``).

External simulators (pyuvsim, matvis) run in their own environment (``make simulator``) through
``data_scripts/simulate_observation.py`` and hand over a Measurement Set.
"""
